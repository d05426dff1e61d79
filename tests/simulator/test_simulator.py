"""WanWorldSimulator.extract: equality with the straightforward diffusers computation,
determinism, shapes, geometry (whole frame, never cropped), config, errors."""

import dataclasses
import json

import pytest
import torch

from tests.simulator.sim_helpers import (
    context,
    frames,
    latent_stats,
    make_sim,
    reference_features,
    tiny_transformer,
    tiny_vae,
)
from vega3d.errors import Vega3DError
from vega3d.grids import resample_grid
from vega3d.simulator import SimulatorConfig, WanWorldSimulator, flow_noise_level
from vega3d.simulator.geometry import content_box, fit_frames


@pytest.fixture(scope="module")
def sim():
    return make_sim()


def test_shapes_and_properties(sim):
    out = sim.extract(frames(3))
    assert out.shape == (3, 4, 6, 32) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert sim.feature_dim == 32
    assert sim.noise_level == flow_noise_level(300, 5.0) == (299, pytest.approx(0.29992384))
    assert sim.stand_in is False
    assert sim.grid_size == (4, 6)


def test_equals_straightforward_diffusers(sim):
    x = frames(3)
    ref = reference_features(sim, x, sim.draw_noise(3))
    out = sim.extract(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_block_selects_hidden_state():
    a, b = make_sim(block=1), make_sim(block=3)
    x = frames(2)
    ra, rb = a.extract(x), b.extract(x)
    torch.testing.assert_close(ra, reference_features(a, x, a.draw_noise(2)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(rb, reference_features(b, x, b.draw_noise(2)), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(ra, rb)


def test_given_noise_is_used(sim):
    x = frames(2)
    eps = torch.randn(2, 16, 1, 8, 12, generator=torch.Generator().manual_seed(9))
    out = sim.extract(x, noise=eps)
    torch.testing.assert_close(out, reference_features(sim, x, eps), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out, sim.extract(x))


def test_deterministic_and_call_order_independent(sim):
    x = frames(3)
    first = sim.extract(x)
    assert torch.equal(sim.extract(x, progress=True), first)
    sim.extract(frames(2, seed=11))  # an unrelated call in between
    assert torch.equal(sim.extract(x), first)
    again = make_sim()
    assert torch.equal(again.extract(x), first)


def test_batching_does_not_change_results():
    x = frames(5)
    one = make_sim(batch_frames=1).extract(x)
    three = make_sim(batch_frames=3).extract(x)
    assert torch.equal(one, three)  # bit for bit on the CPU (test_determinism.py has more)


def test_noise_is_per_position_and_seeded(sim):
    eps = sim.draw_noise(3)
    assert torch.equal(eps[:2], sim.draw_noise(2))  # frame i's noise does not depend on N
    assert not torch.equal(eps[0], eps[1])
    other = make_sim(seed=1)
    assert not torch.equal(other.draw_noise(1), eps[:1])
    x = frames(2)
    assert not torch.allclose(other.extract(x), sim.extract(x))


def test_uint8_is_converted_per_batch_and_equals_float(monkeypatch):
    """uint8 input: converted one internal batch at a time, features bit-identical to the float input."""
    import vega3d.simulator.simulator as simulator_module

    s = make_sim(batch_frames=2)
    u8 = torch.randint(0, 256, (5, 64, 96, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    expected = s.extract(u8.permute(0, 3, 1, 2).float() / 255)
    converted = []
    real = simulator_module.as_float_frames

    def spy(f, *args, **kwargs):
        converted.append(int(f.shape[0]))
        return real(f, *args, **kwargs)

    monkeypatch.setattr(simulator_module, "as_float_frames", spy)
    assert torch.equal(s.extract(u8), expected)
    assert torch.equal(s.extract(u8.numpy()), expected)
    assert converted == [2, 2, 1] * 2  # never more than batch_frames frames in float at once


def test_default_noise_drawn_per_batch_equals_draw_noise():
    s = make_sim(batch_frames=2)
    x = frames(5)
    assert torch.equal(s.extract(x), s.extract(x, noise=s.draw_noise(5)))


def test_uint8_frames(sim):
    x = frames(2)
    u8 = (x * 255).round().to(torch.uint8)
    as_float = u8.float() / 255
    torch.testing.assert_close(sim.extract(u8.permute(0, 2, 3, 1)), sim.extract(as_float))
    torch.testing.assert_close(sim.extract(u8.permute(0, 2, 3, 1).numpy()), sim.extract(as_float))


def test_config_is_frozen_and_json(sim):
    cfg = sim.config
    assert isinstance(cfg, SimulatorConfig)
    d = json.loads(json.dumps(cfg.to_dict()))
    for key, value in dict(
        block=2,
        t=299,
        shift=5.0,
        seed=0,
        height=64,
        width=96,
        dtype="float32",
        vae_dtype="float32",
        mode="frame",
        pad=False,
        num_layers=4,
        feature_dim=32,
        stand_in=False,
    ).items():
        assert d[key] == value, key
    assert d["timestep"] == 300 and d["sigma"] == pytest.approx(0.29992384)
    assert len(d["prompt"]["sha256"]) == 64
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.block = 3


# ----------------------------------------------------------------------------- geometry


def test_resize_keeps_whole_frame(sim):
    """A change confined to the top rows of a 4:3 frame must reach the features (no crop)."""
    for pad in (False, True):
        s = make_sim(pad=pad)
        a = frames(1, h=48, w=64)
        b = a.clone()
        b[:, :, :3] = 1.0 - b[:, :, :3]
        assert not torch.allclose(s.extract(a), s.extract(b)), pad


def test_content_box():
    assert content_box((64, 96), 64, 96, pad=True) == content_box((64, 96), 64, 96, pad=False)
    square = content_box((64, 64), 64, 96, pad=True)  # 4 token rows, 4 of 6 columns, centred
    assert (square.top, square.left, square.rows, square.cols) == (0, 1, 4, 4)
    wide = content_box((100, 400), 64, 96, pad=True)  # 96 px wide -> 24 px tall -> 2 token rows
    assert (wide.top, wide.left, wide.rows, wide.cols) == (1, 0, 2, 6)


def test_pad_places_frame_in_box():
    x = frames(1, h=40, w=40)
    fitted, box = fit_frames(x, 64, 96, pad=True)
    assert fitted.shape == (1, 3, 64, 96)
    assert torch.all(fitted[..., :16] == 0) and torch.all(fitted[..., 80:] == 0)
    inner = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(fitted[..., 16:80], inner.clamp(0, 1))


def test_pad_grid_is_box_crop_resampled_to_full_frame():
    padded_sim, plain_sim = make_sim(pad=True), make_sim(pad=False)
    x = frames(2, h=64, w=64)
    out = padded_sim.extract(x)
    canvas, box = fit_frames(x, 64, 96, pad=True)
    tokens = plain_sim.extract(canvas)  # same noise: same positions in the call
    expected = resample_grid(tokens[:, box.top : box.top + box.rows, box.left : box.left + box.cols], (4, 6))
    assert out.shape == (2, 4, 6, 32)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_any_input_size_is_resized(sim):
    x = frames(1, h=50, w=70)
    fitted, _ = fit_frames(x, 64, 96)
    torch.testing.assert_close(sim.extract(x), sim.extract(fitted))


# ----------------------------------------------------------------------------- from_pretrained


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    from tests.original_layout import save_tiny_wan_original
    from vega3d.standin.wan import save_tiny_wan

    root = tmp_path_factory.mktemp("wan")
    return {
        "diffusers": save_tiny_wan(root / "diffusers", num_layers=3),
        "original": save_tiny_wan_original(root / "original", num_layers=3),
    }


def test_both_layouts_give_the_same_features(tiny_folders):
    outs = {}
    for layout, folder in tiny_folders.items():
        s = WanWorldSimulator.from_pretrained(folder, block=1, height=64, width=96, dtype="float32")
        assert s.stand_in and "STAND-IN" in repr(s)
        assert s.config.model["weights_hash"] and s.config.model["layout"] == layout
        outs[layout] = s.extract(frames(2))
        assert outs[layout].shape == (2, 4, 6, s.feature_dim)
    torch.testing.assert_close(outs["diffusers"], outs["original"], rtol=1e-5, atol=1e-6)


def test_from_pretrained_errors(tiny_folders):
    folder = tiny_folders["diffusers"]
    s = WanWorldSimulator.from_pretrained(folder, block=1, height=64, width=96)
    with pytest.raises(Vega3DError, match="block"):
        WanWorldSimulator.from_pretrained(folder, block=3, height=64, width=96)
    text_dim = s.transformer.config.text_dim
    with pytest.raises(Vega3DError, match="text_dim"):
        WanWorldSimulator.from_pretrained(
            folder, block=1, height=64, width=96, prompt_embedding=torch.zeros(5, text_dim + 1)
        )
    with pytest.raises(Vega3DError, match="dtype"):
        WanWorldSimulator.from_pretrained(folder, dtype="float64")
    with pytest.raises(Vega3DError, match="missing-folder"):
        WanWorldSimulator.from_pretrained(folder.parent / "missing-folder", block=1, height=64, width=96)


def test_from_pretrained_checks_every_option_before_reading_weights(tiny_folders, tmp_path):
    import shutil

    folder = shutil.copytree(tiny_folders["diffusers"], tmp_path / "corrupt")
    for weights in (folder / "transformer").glob("*.safetensors"):
        weights.write_bytes(b"corrupt")  # reading them would fail with another error
    kw = dict(block=1, height=64, width=96)
    for bad, match in [
        (dict(block=3), r"block: got 3; expected an integer in 0\.\.2"),  # the folder's DiT has 3 blocks
        (dict(height=60), "height"),
        (dict(timestep=1001), "timestep"),
        (dict(seed=0.5), "seed"),
        (dict(batch_frames=0), "batch_frames"),
        (dict(memory_budget=-1), "memory_budget"),
        (dict(dtype="int8"), "dtype"),
    ]:
        with pytest.raises(Vega3DError, match=match):
            WanWorldSimulator.from_pretrained(folder, **{**kw, **bad})
    with pytest.raises(Vega3DError, match="could not load WanTransformer3DModel"):
        WanWorldSimulator.from_pretrained(folder, **kw)


def test_vae_dtype_defaults_to_float32_with_a_bf16_dit(tiny_folders):
    outs = []
    for layout, folder in tiny_folders.items():
        s = WanWorldSimulator.from_pretrained(folder, block=1, height=64, width=96, dtype="bfloat16")
        vae_tensors = list(s.vae.parameters()) + [b for b in s.vae.buffers() if b.is_floating_point()]
        assert {t.dtype for t in vae_tensors} == {torch.float32}, layout
        assert {p.dtype for p in s._frame_encoder.parameters()} == {torch.float32}, layout
        assert s.transformer.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16, layout
        assert s.transformer.scale_shift_table.dtype == torch.float32, layout  # diffusers keeps it fp32
        d = json.loads(json.dumps(s.config.to_dict()))
        assert (d["dtype"], d["vae_dtype"]) == ("bfloat16", "float32"), layout
        assert "DiT bfloat16 / VAE float32" in repr(s)
        outs.append(s.extract(frames(2)))
    assert torch.equal(outs[0], outs[1])  # the two layouts agree bit for bit in mixed precision too


def test_bf16_dit_with_fp32_vae_is_close_to_fp32_and_not_all_bf16(tiny_folders):
    folder, kw = tiny_folders["diffusers"], dict(block=1, height=64, width=96)
    fp32 = WanWorldSimulator.from_pretrained(folder, dtype="float32", **kw)
    mixed = WanWorldSimulator.from_pretrained(folder, dtype="bfloat16", **kw)
    all_bf16 = WanWorldSimulator.from_pretrained(folder, dtype="bfloat16", vae_dtype="bfloat16", **kw)
    assert all_bf16.vae.encoder.conv_in.weight.dtype == torch.bfloat16 and all_bf16.config.vae_dtype == "bfloat16"
    x = frames(2)
    assert torch.equal(mixed._encode_frames(x), fp32._encode_frames(x))  # the VAE stage IS the float32 one
    a, b, c = fp32.extract(x), mixed.extract(x), all_bf16.extract(x)
    assert float((b - a).norm() / a.norm()) < 0.02  # 0.005 with these weights; all-bf16 is 0.007
    assert float((b - c).norm() / a.norm()) > 1e-3  # the VAE dtype makes a real difference
    assert mixed.config.to_dict() != all_bf16.config.to_dict()


def test_latents_are_normalised_and_noised_in_float32_then_cast(tiny_folders):
    """The DiT sees ((1 − σ)·z + σ·ε) computed in float32 and cast once to bf16 (diffusers' order)."""
    s = WanWorldSimulator.from_pretrained(tiny_folders["diffusers"], block=1, height=64, width=96, dtype="bfloat16")
    seen = []
    handle = s.transformer.rope.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x, eps = frames(2), s.draw_noise(2)
    try:
        s.extract(x)
    finally:
        handle.remove()
    mode = s._encode_frames(x)
    assert mode.dtype == torch.float32
    mean = torch.tensor(s.vae.config.latents_mean).view(1, -1, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(s.vae.config.latents_std).view(1, -1, 1, 1, 1)
    z = (mode - mean) * inv_std
    expected = ((1.0 - s.sigma) * z + s.sigma * eps).to(torch.bfloat16)
    assert seen[0].dtype == torch.bfloat16 and torch.equal(seen[0], expected)
    cast_first = (1.0 - s.sigma) * z.to(torch.bfloat16) + s.sigma * eps.to(torch.bfloat16)
    assert not torch.equal(seen[0], cast_first)  # the order is observable, so the check above means something


def test_constructor_vae_dtype_casts_a_copy():
    vae = tiny_vae()
    mean, std = latent_stats()
    kw = dict(block=2, height=64, width=96)
    s = WanWorldSimulator(tiny_transformer(4), vae, mean, std, context(), vae_dtype="bfloat16", **kw)
    assert vae.encoder.conv_in.weight.dtype == torch.float32  # the given module is left as it is
    assert s.vae is not vae and s.vae.encoder.conv_in.weight.dtype == torch.bfloat16
    assert s.config.vae_dtype == "bfloat16" and not s.vae.training
    given_bf16 = WanWorldSimulator(tiny_transformer(4), tiny_vae().to(torch.bfloat16), mean, std, context(), **kw)
    assert given_bf16.config.vae_dtype == "bfloat16"  # default None: the VAE as given
    x = frames(2)
    assert torch.equal(s.extract(x), given_bf16.extract(x))
    same = WanWorldSimulator(tiny_transformer(4), vae, mean, std, context(), vae_dtype=torch.float32, **kw)
    assert same.vae is vae and same.config.vae_dtype == "float32"


@pytest.mark.parametrize("bad", ["banana", "float64", 3, torch.int8])
def test_bad_vae_dtype(tiny_folders, bad):
    from vega3d.simulator.layouts import load_wan_components

    folder = tiny_folders["diffusers"]
    with pytest.raises(Vega3DError, match="vae_dtype"):
        WanWorldSimulator.from_pretrained(folder, block=1, height=64, width=96, vae_dtype=bad)
    with pytest.raises(Vega3DError, match="vae_dtype"):
        make_sim(vae_dtype=bad)
    if bad != "float64":  # the loader itself accepts any floating dtype
        with pytest.raises(Vega3DError, match="vae_dtype"):
            load_wan_components(folder, vae_dtype=bad)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.rand(2, 4, 64, 96), "channels"),
        (torch.rand(2, 64, 96, 4).mul(255).to(torch.uint8), "3 channels"),
        (torch.rand(2, 3, 64, 96) * 2, r"\[0, 1\]"),
        (torch.rand(2, 3, 64, 96) - 0.5, r"\[0, 1\]"),
        (torch.full((1, 3, 64, 96), float("nan")), "NaN"),
        (torch.rand(3, 64, 96), "4 dims"),
        (torch.zeros(1, 3, 64, 96, dtype=torch.int32), "dtype"),
        ([[0.0]], "tensor"),
        (torch.rand(0, 3, 64, 96), "empty"),
    ],
)
def test_bad_frames(sim, bad, match):
    with pytest.raises(Vega3DError, match=match):
        sim.extract(bad)


@pytest.mark.parametrize("shape", [(2, 16, 1, 8, 11), (3, 16, 1, 8, 12), (2, 15, 1, 8, 12), (2, 16, 8, 12)])
def test_bad_noise_shape(sim, shape):
    with pytest.raises(Vega3DError, match="noise"):
        sim.extract(frames(2), noise=torch.randn(shape))


def test_nan_noise(sim):
    eps = sim.draw_noise(2)
    eps[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(Vega3DError, match="noise"):
        sim.extract(frames(2), noise=eps)


@pytest.mark.parametrize("size", [(60, 96), (64, 100), (0, 96), (8, 96)])
def test_size_not_multiple_of_16(size):
    with pytest.raises(Vega3DError, match="multiple of 16"):
        make_sim(height=size[0], width=size[1])


@pytest.mark.parametrize("block", [-1, 4, 30, 2.0, True])
def test_block_out_of_range(block):
    with pytest.raises(Vega3DError, match="block"):
        make_sim(block=block)


def test_prompt_embedding_wrong_width():
    mean, std = latent_stats()
    with pytest.raises(Vega3DError, match="text_dim"):
        WanWorldSimulator(
            tiny_transformer(2), tiny_vae(), mean, std, torch.zeros(512, 31), block=0, height=64, width=96
        )


def test_bad_latent_stats():
    mean, std = latent_stats()
    with pytest.raises(Vega3DError, match="latents_std"):
        WanWorldSimulator(tiny_transformer(2), tiny_vae(), mean, -std, context(), block=0, height=64, width=96)
    with pytest.raises(Vega3DError, match="latents_mean"):
        WanWorldSimulator(tiny_transformer(2), tiny_vae(), mean[:8], std, context(), block=0, height=64, width=96)


@pytest.mark.parametrize("kw", [dict(timestep=-3), dict(shift=0.0), dict(seed=1.5), dict(batch_frames=0)])
def test_bad_options(kw):
    with pytest.raises(Vega3DError):
        make_sim(**kw)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(pad=1), r"^pad: got 1; expected True or False$"),
        (dict(compile="no"), r"^compile: got 'no'; expected True or False$"),
        (dict(shift=0.0), r"^shift: got 0\.0; expected a finite number > 0"),
        (dict(timestep=float("nan")), r"^timestep: got nan; expected a finite number in \[0, 1000\]"),
        (dict(vace_scale=float("inf")), r"^vace_scale: got inf; expected a finite number"),
        (dict(memory_budget=True), r"^memory_budget: got True; expected None or a positive number of bytes$"),
        (dict(block=2.0), r"^block: got 2\.0; expected an integer \(0-based index of a DiT block\)$"),
        (dict(block=-1), r"^block: got -1; expected an integer in 0\.\.3 "),
        (dict(block=4), r"^block: got 4; expected an integer in 0\.\.3 "),
    ],
)
def test_options_are_declared_once(kw, match):
    """SimulatorOptions: each bad option is one line naming it, what was given and what is expected."""
    with pytest.raises(Vega3DError, match=match):
        make_sim(**kw)


def test_numpy_integers_are_integer_options():
    import numpy as np

    sim = make_sim(block=np.int64(1), seed=np.int32(3), batch_frames=np.int64(2))
    assert (sim.block, sim.seed, sim.batch_frames) == (1, 3, 2) and type(sim.block) is int


@pytest.mark.parametrize("name", ["float64", "banana", 3])
def test_bad_dtype_name(name):
    from vega3d.devices import parse_dtype  # the one dtype parser the simulator uses

    with pytest.raises(Vega3DError, match="dtype"):
        parse_dtype(name)
    assert parse_dtype("bfloat16") is torch.bfloat16 and parse_dtype(torch.float32) is torch.float32
