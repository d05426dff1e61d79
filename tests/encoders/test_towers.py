"""wan_vace, wan_vae, vjepa2, dinov3, vggt on tiny random-weight folders in their real layouts."""

import sys
import types

import pytest
import torch

from tests.encoders.towers_helpers import BOTTOM_RIGHT, FRAMES, TOP_LEFT, assert_change_at
from vega3d.encoders import build_encoder, check_encoder
from vega3d.errors import Vega3DError


@pytest.fixture(scope="module")
def vace_dir(tmp_path_factory):
    from vega3d.standin.towers import save_tiny_wan_vace

    return save_tiny_wan_vace(tmp_path_factory.mktemp("vace") / "tiny", num_layers=4, vace_layers=(0, 2))


@pytest.fixture(scope="module")
def vjepa_dir(tmp_path_factory):
    from vega3d.standin.towers import save_tiny_vjepa2

    return save_tiny_vjepa2(tmp_path_factory.mktemp("vjepa2") / "tiny")


@pytest.fixture(scope="module")
def dino_dir(tmp_path_factory):
    from vega3d.standin.towers import save_tiny_dinov3

    return save_tiny_dinov3(tmp_path_factory.mktemp("dinov3") / "tiny")


# ----------------------------------------------------------------------------- Wan2.1-VACE


def _pipeline_control(vae, frames_m1, control: str):
    """The 96-channel control of diffusers' WanVACEPipeline for one-frame videos (its own methods)."""
    from diffusers import WanVACEPipeline

    pipe = WanVACEPipeline(tokenizer=None, text_encoder=None, vae=vae, scheduler=None, transformer=None)
    pipe.transformer = types.SimpleNamespace(config=types.SimpleNamespace(patch_size=(1, 2, 2)))
    out = []
    for f in frames_m1:
        video = (f if control == "frames" else torch.zeros_like(f))[None, :, None]  # (1, 3, 1, H, W) in [-1, 1]
        mask = torch.ones_like(video)
        latents = pipe.prepare_video_latents(video, mask, reference_images=[[]], device="cpu")
        out.append(torch.cat([latents, pipe.prepare_masks(mask, reference_images=[[]])], dim=1))
    return torch.cat(out)


@pytest.mark.parametrize("block,control", [(2, "frames"), (3, "none"), (1, "frames")])
def test_wan_vace_equals_the_stock_forward(vace_dir, block, control):
    """Features after block b = what the stock forward carries into block b + 1 (hint added after
    the VACE layers 0 and 2), with the control the pipeline builds."""
    from diffusers import AutoencoderKLWan, WanVACETransformer3DModel

    from vega3d.simulator.prompt import load_prompt_embedding

    enc = build_encoder("wan_vace", model=vace_dir, block=block, height=64, width=96, vace_control=control, seed=7)
    got = enc(FRAMES)
    assert got.shape == (3, 4, 6, 32) and enc.config["vace"] == {"control": control, "scale": 1.0, "layers": [0, 2]}
    model = WanVACETransformer3DModel.from_pretrained(vace_dir / "transformer").eval()
    vae = AutoencoderKLWan.from_pretrained(vace_dir / "vae").eval()
    cfg, sim = vae.config, enc.simulator
    x = torch.nn.functional.interpolate(FRAMES, size=(64, 96), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        mode = vae.encode(x[:, :, None] * 2 - 1).latent_dist.mode()
        z = (mode - torch.tensor(cfg.latents_mean).view(1, -1, 1, 1, 1)) / torch.tensor(cfg.latents_std).view(
            1, -1, 1, 1, 1
        )
        x_t = (1 - sim.sigma) * z + sim.sigma * sim.draw_noise(3)
        ctx = load_prompt_embedding(vace_dir / "prompt_embedding.safetensors", 32)[None].expand(3, -1, -1)
        seen = {}
        last = block == len(model.blocks) - 1
        target = model.norm_out if last else model.blocks[block + 1]
        handle = target.register_forward_pre_hook(lambda m, args: seen.__setitem__("x", args[0]))
        control_latents = _pipeline_control(vae, x * 2 - 1, control)
        model(x_t, torch.tensor([sim.t]), ctx, control_hidden_states=control_latents)
        handle.remove()
    ref = seen["x"].float().unflatten(1, (1, 4, 6))[:, 0]
    torch.testing.assert_close(got, ref, rtol=2e-4, atol=2e-4)


def test_wan_vace_is_the_t2v_path_with_hints(vace_dir, tmp_path):
    """vace_scale=0 leaves the base DiT: the numbers of Wan2.1-T2V's simulator on the same base weights."""
    from diffusers import WanTransformer3DModel

    from vega3d.simulator import WanWorldSimulator, load_wan_components

    parts = load_wan_components(vace_dir)
    base_cfg = {k: v for k, v in parts.transformer.config.items() if not k.startswith("_") and "vace" not in k}
    t2v = WanTransformer3DModel(**base_cfg).eval()
    missing, unexpected = t2v.load_state_dict(parts.transformer.state_dict(), strict=False)
    assert not missing and all(k.startswith("vace_") for k in unexpected)
    sim = WanWorldSimulator(t2v, parts.vae, parts.latents_mean, parts.latents_std, parts.prompt_embedding,
                            block=2, height=64, width=96)  # fmt: skip
    off = build_encoder("wan_vace", model=vace_dir, block=2, height=64, width=96, vace_scale=0.0)
    assert torch.equal(off(FRAMES), sim.extract(FRAMES))
    on = build_encoder("wan_vace", model=vace_dir, block=2, height=64, width=96)
    assert not torch.allclose(on(FRAMES), sim.extract(FRAMES))
    grids = on.blocks(FRAMES, [0, 2, 3])  # one DiT pass; hints added where the forward adds them
    for b in (0, 2, 3):
        assert torch.equal(grids[b], on.at(block=b)(FRAMES)) and on.at(block=b).name == "wan_vace"
    latents = on.encode(FRAMES)  # one VAE pass for every timestep
    assert torch.equal(on.from_latents(latents, timestep=700), on.at(timestep=700)(FRAMES))


def test_wan_vace_geometry_seed_and_errors(vace_dir, tmp_path):
    from vega3d.standin.wan import save_tiny_wan

    enc = build_encoder("wan_vace", model=vace_dir, block=2, height=64, width=96)
    assert_change_at(enc, FRAMES, TOP_LEFT, tolerance_px=16)  # one token: 16x16 input px
    assert_change_at(enc, FRAMES, BOTTOM_RIGHT, tolerance_px=16)
    assert not torch.allclose(enc(FRAMES), enc.at(seed=1)(FRAMES))
    t2v = save_tiny_wan(tmp_path / "t2v", num_layers=2)
    with pytest.raises(Vega3DError, match="holds a Wan2.1-T2V transformer"):
        build_encoder("wan_vace", model=t2v)
    with pytest.raises(Vega3DError, match="vace_control"):
        build_encoder("wan", model=t2v, block=1, vace_control="none")
    with pytest.raises(Vega3DError, match=r"vace_control.*one of \['frames', 'none'\]"):
        build_encoder("wan_vace", model=vace_dir, block=1, vace_control="mask")


# ----------------------------------------------------------------------------- Wan VAE


def test_wan_vae_is_the_simulators_latents(vace_dir):
    from diffusers import AutoencoderKLWan

    from vega3d.simulator import WanWorldSimulator

    enc = build_encoder("wan_vae", model=vace_dir, height=64, width=96)
    got = enc(FRAMES)
    assert got.shape == (3, 8, 12, 16) and enc.config["stand_in"] is True
    sim = WanWorldSimulator.from_pretrained(vace_dir, block=0, height=64, width=96)
    assert torch.equal(got, sim.encode(FRAMES).latents[:, :, 0].permute(0, 2, 3, 1))  # bit for bit
    vae = AutoencoderKLWan.from_pretrained(vace_dir / "vae").eval()  # and the stock 3-D encoder
    x = torch.nn.functional.interpolate(FRAMES, size=(64, 96), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        mode = vae.encode(x[:, :, None] * 2 - 1).latent_dist.mode()[:, :, 0]
    ref = (mode - torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1)) / torch.tensor(vae.config.latents_std).view(
        1, -1, 1, 1
    )
    torch.testing.assert_close(got, ref.permute(0, 2, 3, 1), rtol=1e-4, atol=1e-4)
    assert_change_at(enc, FRAMES, TOP_LEFT, tolerance_px=8)
    assert_change_at(enc, FRAMES, BOTTOM_RIGHT, tolerance_px=8)


# ----------------------------------------------------------------------------- V-JEPA 2


def _vjepa_reference(folder, frames, clip):
    """transformers' VJEPA2Model on the whole-frame resize, ImageNet-normalised, clips of ``clip`` frames."""
    from transformers import VJEPA2Model

    model = VJEPA2Model.from_pretrained(folder).eval()
    x = torch.nn.functional.interpolate(frames, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        return model(pixel_values_videos=x.view(-1, clip, 3, 32, 32), skip_predictor=True, output_hidden_states=True)


def test_vjepa2_frames_and_clips(vjepa_dir):
    enc = build_encoder("vjepa2", model=vjepa_dir)
    got = enc(FRAMES)
    assert got.shape == (3, 4, 4, 32)  # 32 px crop, patch 8
    ref = _vjepa_reference(vjepa_dir, FRAMES, 1)  # one frame per clip: repeated to fill the tubelet
    torch.testing.assert_close(got, ref.last_hidden_state.view(3, 4, 4, 32), rtol=1e-4, atol=1e-4)
    first = build_encoder("vjepa2", model=vjepa_dir, layer=1)(FRAMES)
    torch.testing.assert_close(first, ref.hidden_states[1].view(3, 4, 4, 32), rtol=1e-4, atol=1e-4)
    four = torch.cat([FRAMES, FRAMES[:1].flip(-1)])
    clips = build_encoder("vjepa2", model=vjepa_dir, clip_frames=4)(four)
    ref4 = _vjepa_reference(vjepa_dir, four, 4).last_hidden_state.view(2, 4, 4, 32)  # 2 tubelets
    torch.testing.assert_close(clips, ref4.repeat_interleave(2, 0), rtol=1e-4, atol=1e-4)  # frames 2t, 2t+1
    assert_change_at(enc, FRAMES, TOP_LEFT, tolerance_px=24)  # a cell is 24x16 px of the 64x96 frames
    assert_change_at(enc, FRAMES, BOTTOM_RIGHT, tolerance_px=24)
    with pytest.raises(Vega3DError, match="clip_frames=3; expected 1 or a multiple of tubelet_size 2"):
        build_encoder("vjepa2", model=vjepa_dir, clip_frames=3)


# ----------------------------------------------------------------------------- DINOv3


def test_dinov3_drops_cls_and_registers_by_count(dino_dir):
    from transformers import DINOv3ViTModel

    enc = build_encoder("dinov3", model=dino_dir, image_size=(48, 64))
    got = enc(FRAMES)
    assert got.shape == (3, 6, 8, 32) and enc.config["num_register_tokens"] == 4
    model = DINOv3ViTModel.from_pretrained(dino_dir).eval()
    x = torch.nn.functional.interpolate(FRAMES, size=(48, 64), mode="bilinear", align_corners=False, antialias=True)
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        tokens = model(pixel_values=x).last_hidden_state
    assert tokens.shape[1] == 1 + 4 + 48
    torch.testing.assert_close(got, tokens[:, 5:].reshape(3, 6, 8, 32), rtol=1e-4, atol=1e-4)
    both = build_encoder("dinov3", model=dino_dir, image_size=(48, 64), cls_token="concat")(FRAMES)
    torch.testing.assert_close(both[..., :32], got)
    torch.testing.assert_close(both[:, 2, 5, 32:], tokens[:, 0], rtol=1e-4, atol=1e-4)
    assert_change_at(enc, FRAMES, TOP_LEFT, tolerance_px=12)
    assert_change_at(enc, FRAMES, BOTTOM_RIGHT, tolerance_px=12)
    with pytest.raises(Vega3DError, match="cls_token='mean'"):
        build_encoder("dinov3", model=dino_dir, cls_token="mean")


def test_dinov3_refuses_another_model(tmp_path):
    from transformers import Dinov2Config, Dinov2Model

    Dinov2Model(Dinov2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                             image_size=28, patch_size=14)).save_pretrained(tmp_path / "dinov2")  # fmt: skip
    with pytest.raises(Vega3DError, match="model_type 'dinov2'; expected 'dinov3_vit'"):
        build_encoder("dinov3", model=tmp_path / "dinov2")


# ----------------------------------------------------------------------------- VGGT


def test_vggt_without_its_package_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vggt", None)  # not importable, whatever this environment holds
    with pytest.raises(Vega3DError, match="'vggt' package is not importable.*not on the package registry"):
        check_encoder("vggt", {"model": tmp_path})


def test_vggt_grid_from_the_aggregator(tmp_path, monkeypatch):
    """With a package that has VGGT's interface (``VGGT.from_pretrained``, ``aggregator(images (B, S, 3, H,
    W)) -> (tokens list of (B, S, P, C), patch_start_idx)``) standing in for the real one: tokens after
    the camera and register tokens become each frame's (H/14, W/14) grid, in row-major order."""

    class FakeVGGT(torch.nn.Module):
        seen = []

        @classmethod
        def from_pretrained(cls, path):
            return cls()

        def aggregator(self, images):
            b, s, _, h, w = images.shape
            FakeVGGT.seen.append(tuple(images.shape))
            patch = torch.arange(h // 14 * (w // 14), dtype=torch.float32).view(1, 1, -1, 1).expand(b, s, -1, 2)
            frame = torch.arange(s, dtype=torch.float32).view(1, s, 1, 1).expand(b, s, patch.shape[2], 2)
            special = torch.full((b, s, 5, 4), -1.0)
            return [torch.cat([special, torch.cat([patch, frame], -1)], 2)] * 3, 5

    package = types.ModuleType("vggt")
    models = types.ModuleType("vggt.models")
    module = types.ModuleType("vggt.models.vggt")
    module.VGGT = FakeVGGT
    for name, mod in (("vggt", package), ("vggt.models", models), ("vggt.models.vggt", module)):
        monkeypatch.setitem(sys.modules, name, mod)
    (tmp_path / "config.json").write_text("{}")
    enc = build_encoder("vggt", model=tmp_path, width=56, layer=-1)
    grid = enc(FRAMES)  # 64x96 frames: 56 px wide, 37.3 px high -> rounded to 42 (3 patches)
    assert FakeVGGT.seen == [(1, 3, 3, 42, 56)] and grid.shape == (3, 3, 4, 4)
    assert grid[1, 2, 3].tolist() == [11.0, 11.0, 1.0, 1.0]  # patch 11 = row 2, column 3 of frame 1
    assert build_encoder("vggt", model=tmp_path, width=56, clip_frames=2)(FRAMES).shape == (3, 3, 4, 4)
    assert FakeVGGT.seen[-2:] == [(1, 2, 3, 42, 56), (1, 1, 3, 42, 56)]
