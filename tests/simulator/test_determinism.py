"""Features do not depend on the internal batch size (CPU, bit for bit); the deterministic switch.

Why they would: torch's CPU convolution picks its algorithm by batch size (a native kernel for
a batch of one small input, oneDNN otherwise) and the CPU bf16 matrix product rounds a stride-0
batch differently from a contiguous one. The simulator encodes one frame per VAE call, computes
the DiT's patch embedding as a matrix product and copies the conditioning per batch
(dit_prefix.py), so every frame's numbers are computed the same way whatever the batch.
"""

import os

import pytest
import torch

from tests.simulator.sim_helpers import context, frames, latent_stats, make_sim, tiny_transformer, tiny_vae
from vega3d.simulator.dit_prefix import patch_embed
from vega3d.simulator.layouts import cast_like_diffusers

BATCHES = (1, 3, 7)  # one frame per call, a batch that leaves a remainder, all at once


def _features(batch, *, dtype=torch.float32, pad=False):
    """Features of 7 frames at 80x120 (not the model size: the resize is part of it)."""
    from vega3d.simulator import WanWorldSimulator

    mean, std = latent_stats()
    dit = cast_like_diffusers(tiny_transformer(), dtype)  # bf16: as the loader casts (float32 modules kept)
    sim = WanWorldSimulator(dit, tiny_vae(), mean, std, context(), block=2, height=64, width=96, batch_frames=batch,
                            pad=pad)  # fmt: skip
    return sim.extract(frames(7, h=80, w=120))


@pytest.mark.parametrize("pad", [False, True])
def test_cpu_features_are_bit_identical_across_batch_sizes(pad):
    out = {b: _features(b, pad=pad) for b in BATCHES}
    for b in BATCHES[1:]:
        assert torch.equal(out[b], out[1]), f"batch_frames={b} vs 1: max diff {(out[b] - out[1]).abs().max():.3e}"


def test_cpu_bf16_dit_features_are_bit_identical_across_batch_sizes():
    out = {b: _features(b, dtype=torch.bfloat16) for b in BATCHES}
    assert all(torch.equal(out[b], out[1]) for b in BATCHES[1:])


def test_uint8_frames_and_several_blocks_are_batch_invariant_too():
    x = (frames(5, h=64, w=96) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    one, all_ = make_sim(batch_frames=1), make_sim(batch_frames=5)
    assert torch.equal(one.extract(x), all_.extract(x))
    enc = all_.encode(x)
    assert torch.equal(one.encode(x).latents, enc.latents)
    a, b = one.features_from_latents(enc, blocks=[0, 2]), all_.features_from_latents(enc, blocks=[0, 2])
    assert all(torch.equal(a[k], b[k]) for k in (0, 2))


def test_cpu_features_do_not_depend_on_the_thread_count():
    sim, x = make_sim(batch_frames=3), frames(4)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = sim.extract(x)
        torch.set_num_threads(2)
        assert torch.equal(sim.extract(x), single)
    finally:
        torch.set_num_threads(before)


def test_patch_embed_is_the_patch_convolution():
    conv = tiny_transformer().patch_embedding
    z = torch.randn(3, 16, 2, 8, 12, generator=torch.Generator().manual_seed(0))
    stock = conv(z).flatten(2).transpose(1, 2)  # (B, F·h·w, D) in the conv's (frame, row, column) order
    torch.testing.assert_close(patch_embed(conv, z), stock, rtol=1e-5, atol=1e-6)
    alone = torch.cat([patch_embed(conv, z[i : i + 1]) for i in range(3)])
    assert torch.equal(alone, patch_embed(conv, z))  # each sample's rows whatever the batch


def test_batch_frames_is_recorded_so_stores_of_other_batches_differ():
    a, b = make_sim(batch_frames=2).config.to_dict(), make_sim(batch_frames=3).config.to_dict()
    assert (a["batch_frames"], b["batch_frames"]) == (2, 3) and a["deterministic"] is False
    assert {k for k in a if a[k] != b[k]} == {"batch_frames"}


@pytest.fixture
def restore_determinism():
    """The switch is process-wide: put torch and the environment back after the test."""
    was, env = torch.are_deterministic_algorithms_enabled(), os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    bench = torch.backends.cudnn.benchmark
    yield
    torch.use_deterministic_algorithms(was)
    torch.backends.cudnn.benchmark = bench
    if env is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = env


def test_deterministic_switches_torch_for_the_process_and_is_recorded(restore_determinism, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.use_deterministic_algorithms(False)
    plain = make_sim(batch_frames=2)
    assert not torch.are_deterministic_algorithms_enabled() and plain.config.deterministic is False
    sim = make_sim(batch_frames=2, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" and torch.backends.cudnn.benchmark is False
    assert sim.config.deterministic is True
    x = frames(3)
    assert torch.equal(sim.extract(x), plain.extract(x))  # on the CPU the kernels were deterministic already


def test_deterministic_keeps_a_cublas_setting_the_user_made(restore_determinism, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    make_sim(deterministic=True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_deterministic_must_be_a_bool():
    from vega3d.errors import Vega3DError

    with pytest.raises(Vega3DError, match="deterministic: got 'yes'"):
        make_sim(deterministic="yes")
