"""Online training with the feature cache: each video's features computed once (epoch 2 reads them),
its counters in log.jsonl, and the same training with and without the cache, bit for bit."""

import json
from pathlib import Path

from vega3d.training.config import load_train_config
from vega3d.training.loop import train

TINY_YAML = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


def _run(tiny, out, *extra):
    config = load_train_config(TINY_YAML, [f"model.base_model={tiny['qwen']}", f"simulator.path={tiny['wan']}",
                                           f"data.annotations={tiny['annotations']}", f"train.output_dir={out}",
                                           "train.save_every=0", *extra])  # fmt: skip
    train(config, progress=False)
    return [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]


def test_two_epochs_compute_each_video_once_and_train_as_without_the_cache(tiny, tmp_path, one_thread):
    cached = _run(tiny, tmp_path / "cached")  # 4 records over 4 videos, 2 per batch, 2 epochs
    assert [r["epoch"] for r in cached] == [0, 0, 1, 1]
    end_of_epoch_1, end = cached[1], cached[-1]
    assert (end_of_epoch_1["feature_cache_misses"], end_of_epoch_1["feature_cache_hits"]) == (4, 0)
    assert (end["feature_cache_misses"], end["feature_cache_hits"]) == (4, 4)  # epoch 2: every video read
    assert end["feature_cache_entries"] == 4 and 0 < end["feature_cache_bytes"] <= end["feature_cache_max_bytes"]
    plain = _run(tiny, tmp_path / "plain", "train.feature_cache_bytes=0")
    assert not any(k.startswith("feature_cache") for k in plain[0])
    assert [r["loss"] for r in plain] == [r["loss"] for r in cached]  # cached features == fresh ones


def test_the_disk_tier_serves_a_second_run(tiny, tmp_path):
    disk = tmp_path / "features"
    first = _run(tiny, tmp_path / "a", f"train.feature_cache_dir={disk}", "train.epochs=1")
    second = _run(tiny, tmp_path / "b", f"train.feature_cache_dir={disk}", "train.epochs=1")
    assert first[-1]["feature_cache_misses"] == 4 and first[-1]["feature_cache_disk_hits"] == 0
    assert second[-1]["feature_cache_misses"] == 0 and second[-1]["feature_cache_disk_hits"] == 4
    (store,) = disk.iterdir()
    assert store.name.startswith("store-") and len(list((store / "records").glob("*.json"))) == 4
