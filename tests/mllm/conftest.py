"""The mllm tests' pieces over the shared tiny setup (``tiny`` in tests/conftest.py)."""

import pytest


@pytest.fixture(scope="session")
def processor(tiny):
    from vega3d.mllm.processing import Vega3DProcessor

    return Vega3DProcessor.from_pretrained(tiny["qwen"], video_min_pixels=56 * 56, video_max_pixels=112 * 112)


@pytest.fixture(scope="session")
def base(tiny):
    from vega3d.mllm.model import load_base

    return load_base(tiny["qwen"]).eval()


@pytest.fixture(scope="session")
def simulator(tiny):
    from vega3d.simulator import WanWorldSimulator

    return WanWorldSimulator.from_pretrained(tiny["wan"], block=1, height=64, width=96)


@pytest.fixture(scope="module")
def model(base, tiny, simulator):
    """A fresh Vega3DQwen (a copy of ``base``, generative branch on) with ``simulator`` attached."""
    import copy

    from vega3d.mllm.config import Vega3DConfig
    from vega3d.mllm.model import Vega3DQwen

    model = Vega3DQwen(copy.deepcopy(base), Vega3DConfig(base_model=str(tiny["qwen"]), generative_dim=32)).eval()
    model.attach_simulator(simulator)
    return model
