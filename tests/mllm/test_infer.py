"""Answerer media reuse: prepared videos, the bounded cache, simulator features kept per video.

Tiny random-weight stand-ins (answers are noise): the tests check that reuse gives the
same strings as reading every video per question, and how often videos are read and the
simulator runs.
"""

import os

import numpy as np
import pytest
import torch

from tests.media_reads import count_media_reads
from vega3d.errors import Vega3DError
from vega3d.mllm import data
from vega3d.mllm.infer import Answerer, MediaCache, PreparedVideo

QUESTIONS = ["How many chairs?", "Where is the lamp?", "Is there a bed?", "How far is the sofa?"]


@pytest.fixture
def counts(monkeypatch):
    """Counts load_video calls (every read of a path) and simulator runs."""
    return count_media_reads(monkeypatch)


def media(tiny):
    root = tiny["root"] / "data"
    return str(root / "video_0.mp4"), str(root / "frames_1")


def test_reuse_gives_the_same_answers_and_reads_each_video_once(model, processor, tiny, counts):
    video, folder = media(tiny)
    videos = [video, video, folder, video]
    plain = Answerer(model, processor, num_frames=4, media_cache=0)  # every question reads its video
    reference = plain.answer(QUESTIONS, videos, max_new_tokens=3, batch_size=3)
    assert counts == {"load": 4, "simulate": 4} and all(isinstance(a, str) for a in reference)

    cached = Answerer(model, processor, num_frames=4)
    counts.update(load=0, simulate=0)
    assert cached.answer(QUESTIONS, videos, max_new_tokens=3, batch_size=3) == reference
    # batch 1 holds the video twice (read once), batch 2 finds it in the cache
    assert counts == {"load": 2, "simulate": 2} and cached.cache.hits == 1
    assert cached.answer(QUESTIONS, videos, max_new_tokens=3, batch_size=3) == reference
    assert counts == {"load": 2, "simulate": 2}  # all from the cache, features included

    prepared = [plain.prepare(video), plain.prepare(folder)]
    assert counts["load"] == 4 and prepared[0].source == video and prepared[0].features is None
    given = plain.answer(
        QUESTIONS, [prepared[0], prepared[0], prepared[1], prepared[0]], max_new_tokens=3, batch_size=2
    )
    assert given == reference and counts == {"load": 4, "simulate": 4}
    assert prepared[0].features.shape[0] == 4  # kept on the prepared video
    # the same frames as training reads them
    frames, _, spg = data.load_video(video, 4, 1.0, 2)
    assert np.array_equal(prepared[0].frames, frames) and prepared[0].second_per_grid_ts == spg
    # the baseline (branch off) never runs the simulator
    counts.update(simulate=0)
    cached.answer(QUESTIONS[:1], [video], max_new_tokens=3, generative=False)
    assert counts["simulate"] == 0


def test_in_memory_frames_and_precomputed_features(model, processor, counts):
    frames = torch.randint(0, 256, (6, 56, 84, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    answerer = Answerer(model, processor, num_frames=4)
    prepared = answerer.prepare(frames)
    assert prepared.source is None and prepared.frames.shape == (4, 56, 84, 3)
    assert answerer.answer(QUESTIONS[:2], [frames, frames], max_new_tokens=3) == answerer.answer(
        QUESTIONS[:2], [prepared, prepared], max_new_tokens=3
    )
    features = [torch.randn(4, 4, 6, 32, generator=torch.Generator().manual_seed(1))] * 2
    counts.update(simulate=0)
    answerer.answer(QUESTIONS[:2], [prepared, prepared], max_new_tokens=3, video_features=features)
    assert counts["simulate"] == 0 and counts["load"] == 0


def test_cache_is_bounded_by_count_and_bytes(model, processor, tiny, counts, tmp_path):
    video, folder = media(tiny)
    other = tmp_path / "copy.mp4"
    other.write_bytes(open(video, "rb").read())
    answerer = Answerer(model, processor, num_frames=4, media_cache=2)
    answerer.answer(QUESTIONS[:3], [video, folder, str(other)], max_new_tokens=2, batch_size=1)
    assert len(answerer.cache) == 2 and counts["load"] == 3
    answerer.answer(QUESTIONS[:1], [str(other)], max_new_tokens=2)  # most recent: kept
    assert counts["load"] == 3
    answerer.answer(QUESTIONS[:1], [video], max_new_tokens=2)  # least recent: evicted, read again
    assert counts["load"] == 4 and len(answerer.cache) == 2
    # a changed file is read again
    os.utime(other, ns=(1, 1))
    answerer.answer(QUESTIONS[:1], [str(other)], max_new_tokens=2)
    assert counts["load"] == 5

    one = answerer.prepare(video)
    small = Answerer(model, processor, num_frames=4, media_cache=4, media_cache_bytes=one.nbytes - 1)
    small.answer(QUESTIONS[:2], [video, video], max_new_tokens=2, batch_size=1)
    assert len(small.cache) == 0 and small.cache.nbytes == 0 and counts["load"] == 8  # too big to keep
    # an entry that grows past the bound when its simulator features are added is dropped
    roomy = Answerer(model, processor, num_frames=4, media_cache_bytes=one.nbytes)
    roomy.answer(QUESTIONS[:1], [video], max_new_tokens=2)
    assert len(roomy.cache) == 0 and counts["load"] == 9
    roomy.answer(QUESTIONS[:1], [video], max_new_tokens=2, generative=False)  # no features: kept
    assert len(roomy.cache) == 1 and roomy.cache.nbytes <= one.nbytes


def test_media_cache_is_lru():
    cache = MediaCache(max_items=2)
    entry = PreparedVideo(np.zeros((1, 2, 2, 3), np.uint8), 1.0, torch.zeros(1, 4), torch.ones(1, 3), "x", ())
    for name in "abc":
        cache.put((name, 0, ()), entry)
        if name == "b":
            assert cache.get(("a", 0, ())) is entry  # a is now the most recent
    assert cache.get(("b", 0, ())) is None and cache.get(("a", 0, ())) is entry and len(cache) == 2
    assert cache.nbytes == 2 * entry.nbytes == 2 * (12 + 16)  # frames uint8 + pixel values float32
    entry.features = torch.zeros(1, 1, 1, 8)
    assert entry.nbytes == 12 + 16 + 32
    cache.clear()
    assert len(cache) == 0


def test_bad_media_settings_are_errors(model, processor, tiny):
    video, _ = media(tiny)
    for kw, match in [
        ({"media_cache": -1}, "media_cache must be"),
        ({"media_cache": True}, "media_cache must be"),
        ({"media_cache_bytes": 1.5}, "media_cache_bytes must be"),
    ]:
        with pytest.raises(Vega3DError, match=match):
            Answerer(model, processor, num_frames=4, **kw)
    eight = Answerer(model, processor, num_frames=8).prepare(video)
    with pytest.raises(Vega3DError, match=r"prepared video .*video_0.mp4 was made with settings \(8, .*uses \(4,"):
        Answerer(model, processor, num_frames=4).answer(QUESTIONS[:1], [eight])
    with pytest.raises(Vega3DError, match="nothing.mp4: no such video file"):
        Answerer(model, processor, num_frames=4).answer(QUESTIONS[:1], [str(tiny["root"] / "nothing.mp4")])
