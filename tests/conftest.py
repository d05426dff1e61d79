"""Shared test setup: never touch a model hub; keep torch quiet; fixtures every folder uses."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Stand-ins on disk (vega3d.standin.data): paths of a tiny Qwen2.5-VL, Wan and training records (qwen, wan, annotations, root); written once per session."""
    from vega3d.standin.data import write_tiny_setup

    return write_tiny_setup(tmp_path_factory.mktemp("mllm_tiny"))
