"""Inputs and the extraction run (with a small deterministic extractor; tiny Wan in test_cli_extract)."""

import json

import av
import numpy as np
import pytest
import torch
from PIL import Image

from tests.store.conftest import PatchMeanExtractor
from tests.store.inputs_fixture import build_inputs, write_frame_folder, write_video
from vega3d import Vega3DError
from vega3d.scenes import load_scene
from vega3d.store import FeatureStore
from vega3d.store.extract import extract_to_store
from vega3d.store.inputs import InputItem, discover_inputs, load_frames


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return build_inputs(tmp_path_factory.mktemp("store_inputs"))


def test_discover_inputs_kinds_and_ids(inputs, tmp_path):
    items = discover_inputs([inputs])
    assert [(i.item_id, i.kind) for i in items] == [
        ("broken", "video"),
        ("clip", "video"),
        ("scan_a", "scan"),
        ("scan_b", "scan"),
        ("scan_nodepth", "scan"),
        ("shots", "frames"),
    ]
    assert discover_inputs([inputs / "shots", inputs / "clip.mp4"]) == [
        InputItem("clip", inputs / "clip.mp4", "video"),
        InputItem("shots", inputs / "shots", "frames"),
    ]
    (tmp_path / "other").mkdir()
    write_video(tmp_path / "other" / "clip.avi", num_frames=2)
    with pytest.raises(Vega3DError, match="same item id 'clip'"):
        discover_inputs([inputs / "clip.mp4", tmp_path / "other" / "clip.avi"])
    with pytest.raises(Vega3DError, match="does not exist"):
        discover_inputs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(Vega3DError, match="holds no input"):
        discover_inputs([tmp_path / "empty"])
    with pytest.raises(Vega3DError, match="a video input must be a video file"):
        discover_inputs([inputs / "shots"], kind="video")


def test_video_frames_uniform_and_explicit(inputs):
    item = InputItem("clip", inputs / "clip.mp4", "video")
    with av.open(str(item.path)) as f:
        decoded = [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]
    got = load_frames(item, num_frames=4)
    assert got.frame_indices == [0, 2, 4, 6] and got.num_available == 7
    expect = torch.from_numpy(np.stack([decoded[i] for i in [0, 2, 4, 6]])).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(got.frames, expect)
    got = load_frames(item, frames=[5, 1])
    assert got.frame_indices == [5, 1]
    assert torch.equal(got.frames[0], torch.from_numpy(decoded[5]).permute(2, 0, 1).float() / 255)
    with pytest.raises(Vega3DError, match=r"frames \[9\] out of range for 7 frames"):
        load_frames(item, frames=[0, 9])
    assert load_frames(item, num_frames=50).frame_indices == list(range(7))  # all of them, once


def test_frame_folder_sorted_numerically(tmp_path):
    write_frame_folder(tmp_path / "shots", names=("a10.png", "a2.png", "a1.png"))
    got = load_frames(InputItem("shots", tmp_path / "shots", "frames"), num_frames=3)
    levels = [round(float(f.mean()) * 255) for f in got.frames]
    assert levels == [10, 20, 100]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "shots" / "a11.png")
    with pytest.raises(Vega3DError, match="a11.png: image is 8x8, but a1.png is 48x32"):
        load_frames(InputItem("shots", tmp_path / "shots", "frames"), num_frames=4)


def test_scan_frames_are_frame_ids(inputs):
    got = load_frames(InputItem("scan_a", inputs / "scan_a", "scan"), num_frames=3)
    scene = load_scene(inputs / "scan_a", frames=3)
    assert got.frame_indices == list(scene.frame_ids) and got.num_available == 6
    assert torch.equal(got.frames, scene.frames())


def test_extract_reports_bad_inputs_per_item_and_resumes(inputs, tmp_path):
    ex = PatchMeanExtractor()
    items = discover_inputs([inputs])
    s = extract_to_store(items, ex, tmp_path / "store", num_frames=4, precision="fp32", progress=False)
    assert sorted(s.done) == ["clip", "scan_a", "scan_b", "shots"]
    assert set(s.failed) == {"broken", "scan_nodepth"}
    assert "broken.mp4" in s.failed["broken"] and "cannot read video" in s.failed["broken"]
    assert "depth" in s.failed["scan_nodepth"]
    assert "asked for 4 frames, the input has 3: using all 3 once" in s.notes["shots"]
    assert "FAILED broken" in s.table() and "4 done" in s.table()
    store = FeatureStore(tmp_path / "store", expected_config=ex)
    assert store.ids() == ["clip", "scan_a", "scan_b", "shots"]
    for it in items:
        if it.item_id in store:
            loaded = load_frames(it, num_frames=4)
            got, idx = store.get(it.item_id)
            assert idx == loaded.frame_indices
            assert torch.equal(got, ex.extract(loaded.frames))
    run = json.loads((tmp_path / "store" / "last_run.json").read_text())
    assert run["failed"].keys() == {"broken", "scan_nodepth"}

    ex2 = PatchMeanExtractor()
    s2 = extract_to_store(items, ex2, tmp_path / "store", num_frames=4, precision="fp32", progress=False)
    assert sorted(s2.skipped) == ["clip", "scan_a", "scan_b", "shots"] and s2.done == []
    assert ex2.calls == 0 and set(s2.failed) == {"broken", "scan_nodepth"}  # failures are retried

    with pytest.raises(Vega3DError, match="'broken' failed \\(--fail-fast\\)"):
        extract_to_store(items, ex2, tmp_path / "store2", num_frames=4, fail_fast=True, progress=False)
    with pytest.raises(Vega3DError, match=r"extraction\.seed"):
        extract_to_store(
            items, PatchMeanExtractor(seed=3), tmp_path / "store", num_frames=4, precision="fp32", progress=False
        )
    with pytest.raises(Vega3DError, match="num_frames"):
        extract_to_store(items, ex2, tmp_path / "store", num_frames=0, progress=False)


def test_a_run_where_every_item_fails_leaves_no_store_and_keeps_an_existing_one(inputs, tmp_path):
    bad = discover_inputs([inputs / "broken.mp4", inputs / "scan_nodepth"])
    s = extract_to_store(bad, PatchMeanExtractor(), tmp_path / "new" / "store", num_frames=3, progress=False)
    assert s.done == [] and set(s.failed) == {"broken", "scan_nodepth"}
    assert not (tmp_path / "new" / "store").exists()  # created by the first item that succeeds: none did
    with pytest.raises(Vega3DError, match="'broken' failed"):
        extract_to_store(bad, PatchMeanExtractor(), tmp_path / "ff", num_frames=3, fail_fast=True, progress=False)
    assert not (tmp_path / "ff").exists()
    # an existing store stays (resume), and logs the run
    good = discover_inputs([inputs / "clip.mp4"])
    extract_to_store(good, PatchMeanExtractor(), tmp_path / "store", num_frames=3, progress=False)
    s = extract_to_store(bad, PatchMeanExtractor(), tmp_path / "store", num_frames=3, progress=False)
    assert FeatureStore(tmp_path / "store").ids() == ["clip"]
    assert json.loads((tmp_path / "store" / "last_run.json").read_text())["failed"].keys() == set(s.failed)


def test_a_new_frame_selection_adds_entries(inputs, tmp_path):
    ex = PatchMeanExtractor()
    items = discover_inputs([inputs / "clip.mp4"])
    extract_to_store(items, ex, tmp_path / "store", num_frames=3, progress=False)
    s = extract_to_store(items, ex, tmp_path / "store", frames=[1, 2], progress=False)
    assert s.done == ["clip"]
    store = FeatureStore(tmp_path / "store")
    assert [e["frame_indices"] for e in store.entries("clip")] in ([[0, 3, 6], [1, 2]], [[1, 2], [0, 3, 6]])
    assert store.get("clip", [1])[1] == [1]


def test_prefetched_keeps_order_and_hands_over_load_errors():
    from vega3d.store.extract import prefetched

    def load(k):
        if k == 2:
            raise OSError("unreadable 2")
        return k * 10

    out = list(prefetched([1, 2, 3], load))
    assert [(i, r) for i, r in out if not isinstance(r, Exception)] == [(1, 10), (3, 30)]
    assert out[1][0] == 2 and isinstance(out[1][1], OSError)
    assert list(prefetched([], load)) == []


def test_collection_with_a_split_list_and_posed_images_without_depth(inputs, tmp_path):
    import shutil

    coll = tmp_path / "posed_images"
    coll.mkdir()
    (coll / "scannetv2_train.txt").write_text("scan_b\n")  # a split list does not make a scan
    shutil.copytree(inputs / "scan_b", coll / "scan_b")
    shutil.copytree(inputs / "scan_b", coll / "scan_c")
    for png in (coll / "scan_c").glob("*.png"):
        png.unlink()  # posed_images depth images gone: still a scan, which then fails to load
    items = discover_inputs([coll])
    assert [(i.item_id, i.kind) for i in items] == [("scan_b", "scan"), ("scan_c", "scan")]
    with pytest.raises(Vega3DError, match="depth"):
        load_frames(items[1], num_frames=2)
