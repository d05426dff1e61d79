"""Reading through a DataLoader with workers, and the byte-bounded online LRU."""

import pytest
import torch
from torch.utils.data import DataLoader

from tests.store.conftest import PatchMeanExtractor, random_features
from vega3d import Vega3DError
from vega3d.store import FeatureDataset, OnlineFeatureCache, StoreWriter, make_store_config


def test_dataloader_with_two_workers_reads_requested_frames(tmp_path):
    w = StoreWriter(tmp_path / "store", make_store_config(PatchMeanExtractor(), "bf16"))
    feats = {f"s{k}": random_features(4, seed=k) for k in range(4)}
    for item_id, f in feats.items():
        w.write(item_id, [0, 3, 6, 9], f)
    requests = [("s0", [3, 9]), ("s1", [0, 6]), ("s2", [9, 0]), ("s3", [3, 6])]
    ds = FeatureDataset(tmp_path / "store", requests, dtype=torch.float32)
    loader = DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2
    got = {i: (f, idx) for b in batches for i, f, idx in zip(b["item_id"], b["features"], b["frame_indices"])}
    pos = {0: 0, 3: 1, 6: 2, 9: 3}
    for item_id, frames in requests:
        f, idx = got[item_id]
        assert idx.tolist() == frames
        assert f.dtype == torch.float32
        assert torch.equal(f, feats[item_id][[pos[i] for i in frames]].bfloat16().float())
    assert len(FeatureDataset(tmp_path / "store")) == 4  # default: every item
    with pytest.raises(Vega3DError, match="'nope' is not in store"):
        FeatureDataset(tmp_path / "store", ["nope"])


def test_online_cache_is_bounded_by_bytes_and_lru(tmp_path):
    ex = PatchMeanExtractor()
    frames = {k: torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(k)) for k in range(6)}
    per_item = 2 * 2 * 3 * 6 * 4  # (2 frames, 2x3 grid, 6 channels) float32
    cache = OnlineFeatureCache(ex, max_bytes=int(2.5 * per_item), precision="fp32")
    for k in range(3):
        cache.get(f"i{k}", [0, 1], frames[k])
        assert cache.bytes <= cache.max_bytes
    assert len(cache) == 2 and ("i0", (0, 1)) not in cache  # the oldest was evicted
    calls = ex.calls
    again = cache.get("i1", [0, 1], lambda: pytest.fail("a hit must not read frames"))
    assert ex.calls == calls and cache.hits == 1
    assert torch.equal(again, ex.extract(frames[1]))
    cache.get("i3", [0, 1], frames[3])  # evicts i2 (least recently used), keeps i1
    assert ("i1", (0, 1)) in cache and ("i2", (0, 1)) not in cache
    assert cache.bytes == 2 * per_item <= cache.max_bytes


def test_online_cache_stores_like_the_store_and_skips_oversized(tmp_path):
    ex = PatchMeanExtractor()
    frames = torch.rand(2, 3, 16, 32, generator=torch.Generator().manual_seed(0))
    cache = OnlineFeatureCache(ex, max_bytes=10, precision="bf16", pool=(1, 2))
    out = cache.get("big", [0, 1], frames)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 1, 2, 6)
    assert len(cache) == 0 and cache.bytes == 0  # larger than the bound: returned, not kept
    with pytest.raises(Vega3DError, match="max_bytes"):
        OnlineFeatureCache(ex, max_bytes=-1)
    with pytest.raises(
        Vega3DError, match=r"item 'x' \(the extractor's output\): 2 frame indices but features of shape \(1, "
    ):
        OnlineFeatureCache(ex, max_bytes=10**6).get("x", [0, 1], frames[:1])
