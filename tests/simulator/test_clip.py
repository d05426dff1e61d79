"""Clip mode: one video through the stock VAE and the DiT; latent-frame ↔ frame mapping."""

import pytest
import torch
import torch.nn.functional as F

from tests.simulator.sim_helpers import context, frames, hooked_full_forward, latent_stats, make_sim
from vega3d.errors import Vega3DError
from vega3d.simulator.simulator import latent_frame_groups


@pytest.fixture(scope="module")
def sim():
    return make_sim()


def test_mapping():
    assert latent_frame_groups(1) == ((0,),)
    assert latent_frame_groups(5) == ((0,), (1, 2, 3, 4))
    assert latent_frame_groups(9) == ((0,), (1, 2, 3, 4), (5, 6, 7, 8))


def test_clip_shapes_and_mapping(sim):
    out = sim.extract_clip(frames(5))
    assert out.features.shape == (2, 4, 6, 32) and out.features.dtype == torch.float32
    assert out.latent_frames == ((0,), (1, 2, 3, 4))
    assert sim.clip_config.mode == "clip" and sim.config.mode == "frame"


def test_clip_equals_straightforward(sim):
    x = frames(5)
    feats, _ = sim.extract_clip(x)
    mean, std = latent_stats()
    mode = sim.vae.encode((x * 2 - 1).permute(1, 0, 2, 3)[None]).latent_dist.mode()
    assert mode.shape == (1, 16, 2, 8, 12)
    z = (mode - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1)
    eps = torch.randn(16, 2, 8, 12, generator=torch.Generator().manual_seed(sim.seed))[None]
    x_t = (1 - sim.sigma) * z + sim.sigma * eps
    ref = hooked_full_forward(sim.transformer, x_t, sim.t, F.pad(context(), (0, 0, 0, 505)), sim.block)
    torch.testing.assert_close(feats, ref.reshape(2, 4, 6, 32), rtol=1e-4, atol=1e-5)


def test_frames_attend_across_the_clip(sim):
    """Changing the later frames changes latent 0's features (the DiT attends across frames)."""
    x = frames(5)
    y = x.clone()
    y[1:] = 1 - y[1:]
    assert not torch.allclose(sim.extract_clip(x).features[0], sim.extract_clip(y).features[0])


def test_one_frame_clip_equals_frame_mode(sim):
    x = frames(1)
    torch.testing.assert_close(sim.extract_clip(x).features, sim.extract(x), rtol=1e-4, atol=1e-5)


def test_clip_deterministic(sim):
    x = frames(5)
    assert torch.equal(sim.extract_clip(x).features, sim.extract_clip(x).features)


@pytest.mark.parametrize("n", [2, 4, 6, 8])
def test_bad_clip_length(sim, n):
    with pytest.raises(Vega3DError, match=r"1 \+ 4k"):
        sim.extract_clip(frames(n))


def test_bad_clip_noise(sim):
    with pytest.raises(Vega3DError, match="noise"):
        sim.extract_clip(frames(5), noise=torch.randn(1, 16, 5, 8, 12))
