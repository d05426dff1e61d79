"""The online feature cache: the byte bound held exactly (filled past it), LRU order, cached ==
fresh bit for bit (the tiny Wan simulator), the disk tier as a feature store shared by runs, keys
that separate simulators, and CachedExtractor standing in for the simulator."""

import warnings

import numpy as np
import pytest
import torch

from tests.store.conftest import PatchMeanExtractor
from vega3d.errors import Vega3DError
from vega3d.store import CachedExtractor, FeatureStore, OnlineFeatureCache
from vega3d.store.online import FeatureCacheWarning, frames_key

PER_ITEM = 2 * 2 * 3 * 6 * 4  # (2 frames, 2x3 grid, 6 channels) float32 from 16x24 frames


def _frames(k: int) -> torch.Tensor:
    return torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(k))


def test_the_bound_holds_exactly_when_filled_past_it():
    cache = OnlineFeatureCache(PatchMeanExtractor(), max_bytes=3 * PER_ITEM + 7)
    for k in range(6):
        cache.get(f"i{k}", [0, 1], _frames(k))
        held = [k for k in range(6) if (f"i{k}", (0, 1)) in cache]
        assert cache.bytes == len(held) * PER_ITEM <= cache.max_bytes  # the count is the bytes actually held
    assert held == [3, 4, 5] and cache.evictions == 3  # the three oldest went, in order
    cache.get("i3", [0, 1], lambda: pytest.fail("a hit must not read frames"))  # i3 is now the most recent
    cache.get("i6", [0, 1], _frames(6))
    assert [k for k in range(7) if (f"i{k}", (0, 1)) in cache] == [3, 5, 6]  # i4 was the least recently used
    assert cache.stats() == {"hits": 1, "disk_hits": 0, "misses": 7, "evictions": 4, "entries": 3,
                             "bytes": 3 * PER_ITEM, "max_bytes": 3 * PER_ITEM + 7}  # fmt: skip


def test_an_entry_of_exactly_the_bound_is_kept_a_larger_one_is_not():
    exact = OnlineFeatureCache(PatchMeanExtractor(), max_bytes=PER_ITEM)
    exact.get("a", [0, 1], _frames(0))
    exact.get("b", [0, 1], _frames(1))
    assert len(exact) == 1 and ("b", (0, 1)) in exact and exact.bytes == PER_ITEM
    small = OnlineFeatureCache(PatchMeanExtractor(), max_bytes=PER_ITEM - 1)
    assert small.get("a", [0, 1], _frames(0)).shape == (2, 2, 3, 6) and len(small) == 0 and small.bytes == 0
    for bad in (-1, 2.5, True):
        with pytest.raises(Vega3DError, match="max_bytes must be an integer >= 0"):
            OnlineFeatureCache(PatchMeanExtractor(), max_bytes=bad)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from vega3d.simulator import WanWorldSimulator
    from vega3d.standin.wan import save_tiny_wan

    wan = save_tiny_wan(tmp_path_factory.mktemp("wan") / "wan", num_layers=2)
    return WanWorldSimulator.from_pretrained(wan, block=1, height=32, width=48)


class Counting:
    """An extractor that counts its calls (everything else: the simulator's)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def extract(self, frames):
        self.calls += 1
        return self.inner.extract(frames)

    def __getattr__(self, name):
        return getattr(self.__dict__["inner"], name)


def _video(seed=0, n=3):
    return np.random.default_rng(seed).integers(0, 256, (n, 40, 60, 3), dtype=np.uint8)


def test_a_cached_feature_is_bit_identical_to_a_fresh_one(sim):
    counted = Counting(sim)
    cached = CachedExtractor(counted, max_bytes=1 << 30)
    x = _video()
    fresh = sim.extract(x)
    first = cached.extract(x)
    again = cached.extract(torch.from_numpy(x.copy()))  # the same frames in another object: a hit
    assert counted.calls == 1 and cached.stats()["hits"] == 1
    assert first.device.type == "cpu" and first.dtype == torch.float32
    assert torch.equal(first, fresh.cpu()) and torch.equal(again, fresh.cpu())
    other = _video()
    other[1, 5, 5, 0] ^= 1  # one value of one frame
    cached.extract(other)
    assert counted.calls == 2  # another input: computed


def test_cached_extractor_stands_in_for_the_simulator(sim):
    cached = CachedExtractor(sim, max_bytes=1 << 20)
    assert cached.feature_dim == sim.feature_dim and cached.config is sim.config and cached.device == sim.device
    assert cached.stand_in is True and "CachedExtractor(" in repr(cached)
    from vega3d.standin import stand_in_parts

    assert stand_in_parts(simulator=cached) == ["simulator"]


def test_frames_key_follows_content_shape_and_dtype():
    x = _video()
    assert frames_key(x) == frames_key(torch.from_numpy(x.copy()))
    assert frames_key(x[:2]) != frames_key(x)
    assert frames_key(x.astype(np.float32)) != frames_key(x)
    y = x.copy()
    y[0, 0, 0, 0] ^= 1
    assert frames_key(y) != frames_key(x)


def test_the_disk_tier_is_a_feature_store_shared_by_runs(sim, tmp_path):
    x = _video(seed=1)
    first = CachedExtractor(Counting(sim), max_bytes=1 << 30, disk=tmp_path / "disk")
    fresh = first.extract(x)
    counted = Counting(sim)
    second = CachedExtractor(counted, max_bytes=1 << 30, disk=tmp_path / "disk")  # a later run
    assert torch.equal(second.extract(x), fresh) and counted.calls == 0
    assert second.stats()["disk_hits"] == 1 and second.stats()["misses"] == 0
    (folder,) = (tmp_path / "disk").iterdir()
    store = FeatureStore(folder, expected_config=sim)  # a store like any other, of this simulator
    assert store.ids() == [frames_key(x)] and torch.equal(store.get(frames_key(x))[0], fresh)


def test_a_damaged_disk_entry_is_warned_about_and_recomputed(sim, tmp_path):
    x = _video(seed=2)
    fresh = CachedExtractor(sim, max_bytes=1 << 30, disk=tmp_path / "disk").extract(x)
    (shard,) = (tmp_path / "disk").glob("store-*/shards/*.safetensors")
    data = bytearray(shard.read_bytes())
    data[-2] ^= 0x10
    shard.write_bytes(bytes(data))
    counted = Counting(sim)
    again = CachedExtractor(counted, max_bytes=1 << 30, disk=tmp_path / "disk")
    with pytest.warns(FeatureCacheWarning, match="does not match its record's sha256"):
        assert torch.equal(again.extract(x), fresh)
    assert counted.calls == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rewritten: a third run reads it cleanly
        assert torch.equal(CachedExtractor(sim, max_bytes=0, disk=tmp_path / "disk").extract(x), fresh)


def test_an_unwritable_disk_tier_is_warned_about_and_dropped(sim, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cached = CachedExtractor(sim, max_bytes=1 << 30, disk=blocker / "disk")
    with pytest.warns(FeatureCacheWarning, match="going on in RAM only"):
        cached.extract(_video(seed=3))
    assert cached.cache.disk is None and cached.stats()["entries"] == 1


def test_simulators_of_another_size_never_share_an_entry(sim, tmp_path):
    from vega3d.simulator import WanWorldSimulator

    other = WanWorldSimulator.from_pretrained(sim.config.model["path"], block=1, height=48, width=64)
    a = OnlineFeatureCache(sim, max_bytes=1 << 30, disk=tmp_path / "disk")
    b = OnlineFeatureCache(other, max_bytes=1 << 30, disk=tmp_path / "disk")
    assert a._key("v", [0]) != b._key("v", [0]) and a.disk.path != b.disk.path
    x = _video(seed=4, n=1)
    assert a.get("v", [0], x).shape[1:3] == (2, 3) and b.get("v", [0], x).shape[1:3] == (3, 4)
    assert b.stats()["misses"] == 1 and b.stats()["disk_hits"] == 0


def test_answerers_share_features_through_the_disk_tier(tmp_path):
    """eval-model's path: a second answerer (a later run) reads the first one's features."""
    from vega3d.mllm.infer import Answerer
    from vega3d.standin.data import write_tiny_checkpoint

    checkpoint = write_tiny_checkpoint(tmp_path / "ckpt", num_frames=4)
    videos = [_video(seed=5, n=6), _video(seed=6, n=6)]
    first = Answerer.from_checkpoint(checkpoint, feature_cache_dir=tmp_path / "features")
    answers = first.answer(["How many chairs?", "Where is the lamp?"], videos, max_new_tokens=3)
    assert first.model.feature_cache_stats()["misses"] == 2
    second = Answerer.from_checkpoint(checkpoint, feature_cache_dir=tmp_path / "features")
    assert second.answer(["How many chairs?", "Where is the lamp?"], videos, max_new_tokens=3) == answers
    stats = second.model.feature_cache_stats()
    assert (stats["disk_hits"], stats["misses"]) == (2, 0)
    off = Answerer.from_checkpoint(checkpoint, feature_cache_bytes=0)
    assert off.model.feature_cache_stats() == {} and not isinstance(off.model.simulator, CachedExtractor)
    with pytest.raises(Vega3DError, match="feature_cache_bytes: got -1; expected an integer >= 0"):
        Answerer.from_checkpoint(checkpoint, feature_cache_bytes=-1)
