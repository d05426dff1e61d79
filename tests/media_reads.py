"""Counting media reads and simulator runs, for tests that check each video is read once."""


def count_media_reads(monkeypatch) -> dict:
    """Wrap ``vega3d.mllm.data.load_video`` (every read of a video / scan) and
    ``Vega3DQwen.simulator_features`` (every simulator run) with counters; returns the live
    ``{"load": n, "simulate": n}`` dict."""
    from vega3d.mllm import data
    from vega3d.mllm.model import Vega3DQwen

    calls = {"load": 0, "simulate": 0}
    load, simulate = data.load_video, Vega3DQwen.simulator_features

    def counting_load(*args, **kwargs):
        calls["load"] += 1
        return load(*args, **kwargs)

    def counting_simulate(self, frames):
        calls["simulate"] += 1
        return simulate(self, frames)

    monkeypatch.setattr(data, "load_video", counting_load)
    monkeypatch.setattr(Vega3DQwen, "simulator_features", counting_simulate)
    return calls
