"""Fixtures of the policy tests: the tiny OpenVLA-OFT stand-in on disk, written once per session."""

import pytest


@pytest.fixture(scope="session")
def tiny_oft(tmp_path_factory):
    """A tiny OpenVLA-OFT LIBERO checkpoint in the released layout (vega3d.standin.oft)."""
    from vega3d.standin.oft import save_tiny_oft

    return save_tiny_oft(tmp_path_factory.mktemp("tiny_oft"))


@pytest.fixture(scope="session")
def tiny_wan(tmp_path_factory):
    """A tiny Wan2.1 stand-in (4 blocks, width 32) for the generative branch."""
    from vega3d.standin.wan import save_tiny_wan

    return save_tiny_wan(tmp_path_factory.mktemp("tiny_wan"), num_layers=4, dim=32)
