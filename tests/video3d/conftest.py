"""Shared fixtures: one tiny synthetic Video-3D LLM dataset per session (small: ~2 s to write)."""

import pytest

SMALL = {"seed": 3, "train_scenes": 1, "val_scenes": 1, "num_frames": 12, "height": 48, "width": 64,
         "depth_height": 30, "depth_width": 40, "select_frames": 8}  # fmt: skip


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Path of the ``data/`` folder written by :func:`vega3d.video3d.write_tiny_dataset` with :data:`SMALL`."""
    from vega3d.video3d import write_tiny_dataset

    return write_tiny_dataset(tmp_path_factory.mktemp("video3d") / "data", SMALL)


@pytest.fixture
def no_meteor(monkeypatch):
    """Caption metrics without the METEOR Java process (scored 0): these tests check the other metrics."""
    from vega3d.eval import captions

    class _Zero:
        def compute_score(self, gts, res):
            return 0.0, [0.0] * len(gts)

    monkeypatch.setattr(captions.CaptionScorer, "_meteor_scorer", lambda self: _Zero())
