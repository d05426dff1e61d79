"""The simulator's public stages: ``encode`` (VAE) and ``features_from_latents`` (noise + DiT).

``extract`` must be exactly their composition (bit for bit, pad geometry included), one
``encode`` must serve other timesteps, and ``blocks=`` must read several blocks from ONE DiT
pass that stops at the deepest."""

import pytest
import torch

from tests.simulator.sim_helpers import frames, latent_stats, make_sim
from vega3d.errors import Vega3DError
from vega3d.simulator.geometry import ContentBox
from vega3d.simulator.simulator import FrameLatents


@pytest.fixture(scope="module")
def sim():
    return make_sim(num_layers=4, block=2, batch_frames=2)  # 3 frames -> 2 internal batches


@pytest.fixture(scope="module")
def padded():
    return make_sim(num_layers=4, block=2, batch_frames=2, pad=True)


@pytest.mark.parametrize("size", [(64, 96), (50, 96), (64, 40)])
@pytest.mark.parametrize("pad", [False, True])
def test_extract_is_encode_then_features_bit_for_bit(sim, padded, pad, size):
    s = padded if pad else sim
    x = frames(3, *size)
    enc = s.encode(x)
    assert isinstance(enc, FrameLatents)
    assert enc.latents.shape == (3, 16, 1, 8, 12) and enc.latents.dtype == torch.float32
    if pad and size != (64, 96):
        assert enc.box != ContentBox(0, 0, 4, 6)  # the frame sits in a padded box: the crop matters
    assert torch.equal(s.features_from_latents(enc), s.extract(x))


def test_uint8_frames_and_explicit_noise(sim):
    x = (frames(3) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)  # (N, H, W, 3)
    eps = torch.randn(3, 16, 1, 8, 12, generator=torch.Generator().manual_seed(9))
    enc = sim.encode(x)
    assert torch.equal(sim.features_from_latents(enc), sim.extract(x))
    assert torch.equal(sim.features_from_latents(enc, eps), sim.extract(x, eps))
    assert not torch.equal(sim.features_from_latents(enc, eps), sim.extract(x))
    bare = sim.features_from_latents(enc.latents)  # a bare tensor is fine without padding
    assert torch.equal(bare, sim.extract(x))


def test_latents_are_noise_free_and_normalised(sim):
    x = frames(3)
    other_seed = make_sim(num_layers=4, block=2, batch_frames=2, seed=5)
    assert torch.equal(sim.encode(x).latents, other_seed.encode(x).latents)  # no noise in stage 1
    mean, std = latent_stats()
    mode = torch.cat([sim.vae.encode((x[i : i + 1] * 2 - 1)[:, :, None]).latent_dist.mode() for i in range(3)])
    expected = (mode - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1)  # stock diffusers VAE, Wan's stats
    torch.testing.assert_close(sim.encode(x).latents, expected, rtol=1e-4, atol=1e-5)
    a = sim.features_from_latents(sim.encode(x))
    assert torch.equal(a, sim.features_from_latents(sim.encode(x)))  # a fresh seeded draw every call
    assert not torch.equal(a, other_seed.features_from_latents(other_seed.encode(x)))


@pytest.mark.parametrize("pad", [False, True])
def test_other_timestep_equals_a_simulator_built_at_it(sim, padded, pad):
    s = padded if pad else sim
    x = frames(3, 50, 96)
    enc = s.encode(x)
    at_700 = make_sim(num_layers=4, block=2, batch_frames=2, pad=pad, timestep=700)
    got = s.features_from_latents(enc, timestep=700)
    assert torch.equal(got, at_700.extract(x))
    assert not torch.equal(got, s.extract(x))
    assert torch.equal(s.features_from_latents(enc, timestep=s.t), s.extract(x))  # own level: same numbers


def test_several_blocks_from_one_dit_pass_to_the_deepest(sim, padded):
    x = frames(3, 50, 96)
    for s in (sim, padded):
        enc = s.encode(x)
        runs = {i: 0 for i in range(4)}
        passes = []
        hooks = [
            s.transformer.blocks[i].register_forward_hook(lambda *_a, i=i: runs.__setitem__(i, runs[i] + 1))
            for i in range(4)
        ]
        hooks.append(s.transformer.rope.register_forward_pre_hook(lambda *_a: passes.append(1)))  # once per DiT pass
        try:
            grids = s.features_from_latents(enc, blocks=[1, 0, 1])
        finally:
            for h in hooks:
                h.remove()
        assert list(grids) == [0, 1]  # sorted, duplicates merged
        assert len(passes) == 2  # one DiT pass per internal batch of 2 frames, not per block
        assert runs == {0: 2, 1: 2, 2: 0, 3: 0}  # stops after the deepest requested block
        for b, grid in grids.items():
            alone = make_sim(num_layers=4, block=b, batch_frames=2, pad=s.pad)
            assert torch.equal(grid, alone.extract(x)), b
        deeper = s.features_from_latents(enc, blocks=[2, 3], timestep=500)
        assert torch.equal(deeper[2], s.features_from_latents(enc, timestep=500))
        at = make_sim(num_layers=4, block=3, batch_frames=2, pad=s.pad, timestep=500)
        assert torch.equal(deeper[3], at.extract(x))


@pytest.mark.parametrize(
    "blocks, match",
    [
        ([], "empty"),
        ([4], "0..3"),
        ([-1], "0..3"),
        ([True], "integer"),
        ([1.5], "integer"),
        (2, "list of 0-based"),
        ("12", "list of 0-based"),
    ],
)
def test_bad_blocks(sim, blocks, match):
    enc = sim.encode(frames(1))
    with pytest.raises(Vega3DError, match=match):
        sim.features_from_latents(enc, blocks=blocks)


@pytest.mark.parametrize("timestep", [1001, -1, float("nan"), True, "300"])
def test_bad_timestep(sim, timestep):
    enc = sim.encode(frames(1))
    with pytest.raises(Vega3DError, match="timestep"):
        sim.features_from_latents(enc, timestep=timestep)


def test_bad_latents_and_noise(sim, padded):
    enc = sim.encode(frames(2))
    z = enc.latents
    nan = z.clone()
    nan[1, 3, 0, 2, 5] = float("nan")
    cases = [
        (z[:, :8], "shape"),
        (z[0], "shape"),
        (z[:0], "N >= 1"),
        (z.to(torch.int32), "float tensor"),
        ([z], "float tensor"),
        (nan, "NaN"),
        (FrameLatents(z, ContentBox(0, 0, 5, 6)), "inside the 4x6"),
        (FrameLatents(z, ContentBox(0, 1, 4, 4)), "pad=True"),  # a padded box on a pad=False simulator
    ]
    for bad, match in cases:
        with pytest.raises(Vega3DError, match=match):
            sim.features_from_latents(bad)
    with pytest.raises(Vega3DError, match="FrameLatents"):
        padded.features_from_latents(z)  # the content box is needed to undo the padding
    with pytest.raises(Vega3DError, match="noise: shape"):
        sim.features_from_latents(enc, torch.zeros(3, 16, 1, 8, 12))
    with pytest.raises(Vega3DError, match="expected 4 dims"):
        sim.encode(torch.rand(3, 64, 96))
