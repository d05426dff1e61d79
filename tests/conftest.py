"""Shared test setup: never touch a model hub; keep torch quiet; fixtures every folder uses."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True, scope="session")
def _vega3d_cache(tmp_path_factory):
    """vega3d's cache folder (the built-in stand-in, prompt contexts: vega3d.files.cache_dir) is one
    of this test session, never the user's; subprocesses inherit it."""
    before = os.environ.get("VEGA3D_CACHE")
    os.environ["VEGA3D_CACHE"] = str(tmp_path_factory.mktemp("vega3d-cache"))
    yield
    if before is None:
        os.environ.pop("VEGA3D_CACHE", None)
    else:
        os.environ["VEGA3D_CACHE"] = before


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Stand-ins on disk (vega3d.standin.data): paths of a tiny Qwen2.5-VL, Wan and training records (qwen, wan, annotations, root); written once per session."""
    from vega3d.standin.data import write_tiny_setup

    return write_tiny_setup(tmp_path_factory.mktemp("mllm_tiny"))


# Data shared by the project's checkouts lives beside the repository, in ../shared (not shipped).
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def tum_sample() -> Path:
    """The real 10-frame TUM RGB-D sample (fr1/xyz, SensReader layout; CC BY 4.0) at
    ``<repository>/../shared/data/tum_fr1_xyz_10``. Skipped where ``../shared`` does not exist
    (a checkout on its own); a failure where ``../shared`` exists but the sample is missing."""
    folder = SHARED / "data" / "tum_fr1_xyz_10"
    if not SHARED.is_dir():
        pytest.skip(f"no shared data folder {SHARED} beside the repository (it holds the real TUM sample)")
    if not (folder / "color").is_dir():
        pytest.fail(f"{folder}: the real TUM RGB-D sample is missing although {SHARED} exists")
    return folder


@pytest.fixture
def one_thread():
    """Bit-exact comparisons between runs need a fixed intra-op thread count: one, for this test."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
