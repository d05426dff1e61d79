"""Shared fixtures: tiny LLaVA-Video stand-ins in both layouts, a stand-in of the released
Video-3D LLM checkpoint, and one tiny training setup (dataset in the released formats, a Wan
stand-in and its feature store) — each written once per session."""

import pytest


@pytest.fixture(scope="session")
def llava(tmp_path_factory):
    """Paths of tiny random-weight stand-ins: ``llava`` (original layout, the dropped SigLIP layer
    kept), ``hf`` (transformers layout, same weights), ``v3d`` (a released-Video-3D-LLM-like folder)."""
    from vega3d.standin.llava_video import save_tiny_llava_video

    root = tmp_path_factory.mktemp("llava_video")
    return {
        "llava": save_tiny_llava_video(root / "llava", "llava", keep_dropped_layer=True),
        "hf": save_tiny_llava_video(root / "hf", "hf"),
        "v3d": save_tiny_llava_video(root / "v3d", "llava", video3d=True),
    }


@pytest.fixture(scope="session")
def setup(tmp_path_factory):
    """vega3d.standin.llava_video.write_tiny_video3d_setup: ``llava_video``, ``wan``, ``data``, ``store``."""
    from vega3d.standin.llava_video import write_tiny_video3d_setup

    return write_tiny_video3d_setup(tmp_path_factory.mktemp("video3d_setup"))


@pytest.fixture(scope="session")
def v3d_data(setup):
    """The ``data/`` folder of the tiny dataset (one train scan, one val scan, 12 frames each)."""
    return setup["data"]
