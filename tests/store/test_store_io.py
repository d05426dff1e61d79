"""Writing and reading a store: round trips, index, config checks, corruption detection."""

import json
import time

import pytest
import torch

from tests.store.conftest import PatchMeanExtractor, random_features
from vega3d import Vega3DError
from vega3d.grids import resample_grid
from vega3d.store import FeatureStore, StoreWriter, layout, make_store_config


def _writer(tmp_path, precision="fp32", pool=None, **kw):
    return StoreWriter(tmp_path / "store", make_store_config(PatchMeanExtractor(**kw), precision, pool))


@pytest.mark.parametrize(
    "precision,dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
def test_round_trip_is_byte_exact(tmp_path, precision, dtype):
    w = _writer(tmp_path, precision)
    feats = random_features(3, 4, 5, 6, seed=1) * 7
    rec = w.write("scene_a", [0, 10, 20], feats, selection="uniform:3", num_available=25, kind="scan", source="x")
    store = FeatureStore(tmp_path / "store")
    got, idx = store.get("scene_a")
    assert idx == [0, 10, 20]
    assert got.dtype == dtype
    assert torch.equal(got, feats.to(dtype))  # exactly what the precision keeps, bit for bit
    assert rec["bytes"] == (tmp_path / "store" / rec["shard"]).stat().st_size
    assert rec["shape"] == [3, 4, 5, 6] and rec["dtype"] == str(dtype).removeprefix("torch.")


def test_ids_len_contains_and_entries(tmp_path):
    w = _writer(tmp_path)
    w.write("b", [0, 1], random_features(2, seed=2))
    w.write("a/x y", [3], random_features(1, seed=3))  # ids with characters unsafe in file names
    store = FeatureStore(tmp_path / "store")
    assert store.ids() == ["a/x y", "b"] and len(store) == 2
    assert "b" in store and "c" not in store
    assert torch.equal(store.get("a/x y")[0], random_features(1, seed=3))
    assert store.total_bytes() == sum(r["bytes"] for r in store.entries())
    with pytest.raises(Vega3DError, match="no item 'c'"):
        store.get("c")


def test_frame_subset_reads_only_requested_rows(tmp_path):
    w = _writer(tmp_path)
    feats = random_features(5, seed=4)
    w.write("s", [0, 5, 10, 15, 20], feats)
    store = FeatureStore(tmp_path / "store")
    got, idx = store.get("s", [20, 5, 10])
    assert idx == [20, 5, 10] and torch.equal(got, feats[[4, 1, 2]])
    got, idx = store.get("s", [5, 10])
    assert idx == [5, 10] and torch.equal(got, feats[1:3])
    with pytest.raises(Vega3DError, match=r"no entry holding frames \[5, 6\]"):
        store.get("s", [5, 6])
    with pytest.raises(Vega3DError, match="empty"):
        store.get("s", [])


def test_several_frame_sets_of_one_item(tmp_path):
    w = _writer(tmp_path)
    w.write("s", [0, 1], random_features(2, seed=5))
    w.write("s", [0, 2, 4], random_features(3, seed=6))
    store = FeatureStore(tmp_path / "store")
    assert len(store) == 1 and len(store.entries("s")) == 2
    with pytest.raises(Vega3DError, match="2 frame sets"):
        store.get("s")
    assert torch.equal(store.get("s", [4])[0], random_features(3, seed=6)[2:])


def test_pooling_at_write_time(tmp_path):
    w = _writer(tmp_path, "fp32", pool=(2, 3))
    feats = random_features(2, 8, 12, 6, seed=7)
    w.write("s", [0, 1], feats)
    got, _ = FeatureStore(tmp_path / "store").get("s")
    assert got.shape == (2, 2, 3, 6)
    assert torch.equal(got, resample_grid(feats, (2, 3)))


def test_same_input_gives_identical_shard_bytes(tmp_path):
    feats = random_features(2, seed=8)
    r1 = StoreWriter(tmp_path / "s1", make_store_config(PatchMeanExtractor(), "bf16")).write("x", [0, 1], feats)
    r2 = StoreWriter(tmp_path / "s2", make_store_config(PatchMeanExtractor(), "bf16")).write("x", [0, 1], feats)
    assert r1 == r2
    assert (tmp_path / "s1" / r1["shard"]).read_bytes() == (tmp_path / "s2" / r2["shard"]).read_bytes()


def test_index_merges_records_and_later_records_are_seen(tmp_path):
    w = _writer(tmp_path)
    w.write("a", [0], random_features(1, seed=9))
    w.write_index()
    index = json.loads((tmp_path / "store" / layout.INDEX_FILE).read_text())
    assert [e["item_id"] for e in index["entries"].values()] == ["a"]
    w.write("b", [0], random_features(1, seed=10))  # committed after the index was merged
    assert FeatureStore(tmp_path / "store").ids() == ["a", "b"]


def test_config_mismatch_is_an_error_for_writer_and_reader(tmp_path):
    _writer(tmp_path, seed=0).write("a", [0], random_features(1))
    with pytest.raises(Vega3DError, match=r"another config.*extraction\.seed: store has 0, expected 1"):
        _writer(tmp_path, seed=1)
    with pytest.raises(Vega3DError, match=r"storage\.precision: store has 'fp32', expected 'bf16'"):
        _writer(tmp_path, "bf16")
    with pytest.raises(Vega3DError, match=r"channels: store has 6, expected 4"):
        FeatureStore(tmp_path / "store", expected_config=PatchMeanExtractor(channels=4))
    # the matching extractor, its config object and the full store config are all accepted
    FeatureStore(tmp_path / "store", expected_config=PatchMeanExtractor())
    FeatureStore(tmp_path / "store", expected_config=PatchMeanExtractor().config)
    FeatureStore(tmp_path / "store", expected_config=make_store_config(PatchMeanExtractor(), "fp32"))


def test_corrupted_shard_is_detected_and_named(tmp_path):
    w = _writer(tmp_path)
    rec = w.write("a", [0, 1], random_features(2, seed=11))
    shard = tmp_path / "store" / rec["shard"]
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF  # one flipped byte in the payload: still a loadable safetensors file
    shard.write_bytes(bytes(data))
    store = FeatureStore(tmp_path / "store")
    with pytest.raises(Vega3DError, match=f"shard .*{shard.name} of item 'a' is corrupted"):
        store.get("a")
    assert len(store.verify_all()) == 1 and shard.name in store.verify_all()[0]


def test_truncated_or_missing_shard(tmp_path):
    w = _writer(tmp_path)
    rec = w.write("a", [0], random_features(1, seed=12))
    shard = tmp_path / "store" / rec["shard"]
    shard.write_bytes(shard.read_bytes()[:20])
    with pytest.raises(Vega3DError, match="corrupted"):
        FeatureStore(tmp_path / "store").get("a")
    with pytest.raises(Vega3DError, match="cannot be read"):  # without the checksum, safetensors' own check
        FeatureStore(tmp_path / "store", verify=False).get("a")
    shard.unlink()
    with pytest.raises(Vega3DError, match="is missing"):
        FeatureStore(tmp_path / "store").get("a")


def test_record_from_another_store_and_malformed_records(tmp_path):
    w = _writer(tmp_path)
    w.write("a", [0], random_features(1, seed=13))
    other = StoreWriter(tmp_path / "other", make_store_config(PatchMeanExtractor(seed=5), "fp32"))
    rec = other.write("b", [0], random_features(1, seed=14))
    key = layout.entry_key("b", [0])
    (tmp_path / "store" / "records" / f"{key}.json").write_text(json.dumps(rec))
    with pytest.raises(Vega3DError, match="record .* belongs to another store"):
        FeatureStore(tmp_path / "store")
    (tmp_path / "store" / "records" / f"{key}.json").write_text("{not json")
    with pytest.raises(Vega3DError, match=f"{key}.json is not valid JSON"):
        FeatureStore(tmp_path / "store")
    del rec["sha256"]
    (tmp_path / "store" / "records" / f"{key}.json").write_text(json.dumps(rec))
    with pytest.raises(Vega3DError, match=r"record\.sha256: required, missing"):
        FeatureStore(tmp_path / "store")


def test_malformed_index_and_record_fields_are_one_line_errors(tmp_path):
    """store.json, index.json and the records are declared models (layout.StoreConfig, Index, Record): one error line
    naming the file and the field."""
    w = _writer(tmp_path)
    rec = w.write("a", [0], random_features(1, seed=15))
    w.write_index()
    index_file = tmp_path / "store" / layout.INDEX_FILE
    index = json.loads(index_file.read_text())
    index_file.write_text(json.dumps({**index, "entries": []}))
    with pytest.raises(Vega3DError, match=r"index\.json: entries: input should be a valid dictionary, got \[\]$"):
        FeatureStore(tmp_path / "store")
    index_file.unlink()
    (tmp_path / "store" / "records" / f"{layout.entry_key('a', [0])}.json").write_text(
        json.dumps({**rec, "shape": [1, 4, 5]})
    )
    with pytest.raises(Vega3DError, match=r"\.json: record\.shape: list should have at least 4 items"):
        FeatureStore(tmp_path / "store")
    store_file = tmp_path / "store" / layout.STORE_FILE
    config = json.loads(store_file.read_text())
    store_file.write_text(json.dumps({**config, "storage": {"precision": "int8", "pool": None}}))
    with pytest.raises(Vega3DError, match=r"store\.json: storage\.precision: input should be 'bf16', 'fp16' or 'fp32'"):
        FeatureStore(tmp_path / "store")


def test_bad_store_folders_and_settings(tmp_path):
    with pytest.raises(Vega3DError, match="not a feature store"):
        FeatureStore(tmp_path)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something.txt").write_text("x")
    with pytest.raises(Vega3DError, match="non-empty folder without store.json"):
        StoreWriter(tmp_path / "busy", make_store_config(PatchMeanExtractor()))
    with pytest.raises(Vega3DError, match="precision must be one of"):
        make_store_config(PatchMeanExtractor(), "int8")
    with pytest.raises(Vega3DError, match="pool must be two positive integers"):
        make_store_config(PatchMeanExtractor(), "bf16", pool=(0, 3))
    with pytest.raises(Vega3DError, match="to_dict"):
        make_store_config(object())
    w = _writer(tmp_path)
    with pytest.raises(Vega3DError, match="2 frame indices but features of shape"):
        w.write("a", [0, 1], random_features(3))
    with pytest.raises(Vega3DError, match="NaN"):
        w.write("a", [0], torch.full((1, 2, 2, 3), float("nan")))
    with pytest.raises(Vega3DError, match=r"\(N, h, w, C\)"):
        w.write("a", [0], torch.zeros(2, 2, 3))
    with pytest.raises(Vega3DError, match="item id"):
        w.write("", [0], random_features(1))
    assert not (tmp_path / "store").exists()  # a store is created by its first write, and none succeeded
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "store.json").write_text(json.dumps({"format": layout.FORMAT, "version": 99}))
    with pytest.raises(Vega3DError, match="format version 99"):
        FeatureStore(tmp_path / "store")


@pytest.mark.parametrize("pool", [5, ("a", "b"), (2, 3, 4), (2, 0), (2.0, 3), (True, 3), "ab"])
def test_bad_pool_is_one_line_naming_the_pool(pool):
    with pytest.raises(Vega3DError, match=r"^feature store: pool must be two positive integers \(h, w\) or None, got"):
        make_store_config(PatchMeanExtractor(), "bf16", pool=pool)


def test_bad_precision_names_the_precision_not_the_pool():
    with pytest.raises(Vega3DError, match=r"^feature store: precision must be one of .*, got 'bf17'$"):
        make_store_config(PatchMeanExtractor(), "bf17")
    assert make_store_config(PatchMeanExtractor(), "fp16", pool=[2, 3])["storage"] == {
        "precision": "fp16",
        "pool": [2, 3],
    }


def test_location_fields_are_recorded_but_not_compared(tmp_path):
    base = {
        "model": {"path": "/nodeA/wan", "weights_hash": "abc"},
        "block": 20,
        "prompt": {"file": "/a/p", "sha256": "f"},
    }
    moved = {
        "model": {"path": "/nodeB/wan", "weights_hash": "abc"},
        "block": 20,
        "prompt": {"file": "/b/p", "sha256": "f"},
    }
    w = StoreWriter(tmp_path / "store", make_store_config(base, "fp32"))
    w.write("a", [0], random_features(1))
    w2 = StoreWriter(tmp_path / "store", make_store_config(moved, "fp32"))  # same model, other mount point
    w2.write("b", [0], random_features(1, seed=1))
    store = FeatureStore(tmp_path / "store", expected_config=moved)
    assert store.ids() == ["a", "b"] and store.extraction_config["model"]["path"] == "/nodeA/wan"
    other = {"model": {"path": "/nodeA/wan", "weights_hash": "xyz"}, "block": 20, "prompt": base["prompt"]}
    with pytest.raises(Vega3DError, match=r"model\.weights_hash: store has 'abc', expected 'xyz'"):
        FeatureStore(tmp_path / "store", expected_config=other)


def test_records_are_the_truth_and_index_alone_serves_a_shipped_store(tmp_path):
    import shutil

    w = _writer(tmp_path)
    w.write("a", [0], random_features(1, seed=20))
    rec_b = w.write("b", [0], random_features(1, seed=21))
    w.write_index()
    # a deleted entry (record and shard removed, index not rewritten yet) is gone for readers
    (tmp_path / "store" / rec_b["shard"]).unlink()
    (tmp_path / "store" / "records" / f"{layout.entry_key('b', [0])}.json").unlink()
    assert FeatureStore(tmp_path / "store").ids() == ["a"]
    # a record rewritten after the index was merged wins over the index's copy
    time.sleep(0.01)
    rec_a = w.write("a", [0], random_features(1, seed=22))
    store = FeatureStore(tmp_path / "store")
    assert store.entries("a")[0]["sha256"] == rec_a["sha256"]
    assert torch.equal(store.get("a")[0], random_features(1, seed=22))
    # shipped without records/: index.json alone
    w.write_index()
    shutil.rmtree(tmp_path / "store" / "records")
    assert torch.equal(FeatureStore(tmp_path / "store").get("a")[0], random_features(1, seed=22))
