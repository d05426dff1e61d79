"""sd21 and svd on tiny random-weight folders in the diffusers layout, against the stock forward."""

import pytest
import torch

from tests.encoders.towers_helpers import FRAMES, assert_change_on_its_side
from vega3d.encoders import build_encoder
from vega3d.errors import Vega3DError


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    from vega3d.standin.towers import save_tiny_sd21

    return save_tiny_sd21(tmp_path_factory.mktemp("sd21") / "tiny")


@pytest.fixture(scope="module")
def svd_dir(tmp_path_factory):
    from vega3d.standin.towers import save_tiny_svd

    return save_tiny_svd(tmp_path_factory.mktemp("svd") / "tiny")


def _hooked(unet, blocks: dict):
    """Forward hooks keeping each named module's output (tuple outputs: the first item)."""
    got = {}

    def keep(name):
        return lambda m, a, out: got.__setitem__(name, out[0] if isinstance(out, tuple) else out)

    return got, [module.register_forward_hook(keep(name)) for name, module in blocks.items()]


def _resize(frames, size):
    return torch.nn.functional.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=True)


def test_sd21_equals_hooks_on_the_stock_forward(sd_dir):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    enc = build_encoder("sd21", model=sd_dir, block="up1", timestep=261, height=64, width=128, ensemble=2, seed=3)
    grids = enc.blocks(FRAMES, ["up1", "down1", "mid"])
    assert torch.equal(grids["up1"], enc(FRAMES))  # one pass for several blocks = the single-block read
    assert (
        grids["up1"].shape == (3, 4, 8, 32)
        and grids["down1"].shape == (3, 2, 4, 16)
        and grids["mid"].shape == (3, 1, 2, 32)
    )
    # independent reference: DIFT's recipe with the library's own modules and a full forward
    unet = UNet2DConditionModel.from_pretrained(sd_dir / "unet").eval()
    vae = AutoencoderKL.from_pretrained(sd_dir / "vae").eval()
    sched = DDIMScheduler.from_pretrained(sd_dir / "scheduler")
    tok = CLIPTokenizer.from_pretrained(sd_dir / "tokenizer")
    text = CLIPTextModel.from_pretrained(sd_dir / "text_encoder").eval()
    with torch.no_grad():
        ids = tok([""] * 6, padding="max_length", max_length=77, return_tensors="pt").input_ids
        ctx = text(ids).last_hidden_state
        z = vae.encode(_resize(FRAMES, (64, 128)) * 2 - 1).latent_dist.mode() * vae.config.scaling_factor
        gen = torch.Generator().manual_seed(3)
        eps = torch.stack([torch.randn(4, 8, 16, generator=gen) for _ in range(6)])  # frame i, member k: draw 2i+k
        noisy = sched.add_noise(z.repeat_interleave(2, 0), eps, torch.tensor([261]))
        got, handles = _hooked(unet, {"up1": unet.up_blocks[1], "down1": unet.down_blocks[1], "mid": unet.mid_block})
        unet(noisy, 261, encoder_hidden_states=ctx)
        [h.remove() for h in handles]
    for name, ref in got.items():
        ref = ref.unflatten(0, (3, 2)).mean(1).permute(0, 2, 3, 1)  # DIFT: mean over the ensemble
        torch.testing.assert_close(grids[name], ref, rtol=1e-4, atol=1e-4)


def test_sd21_seed_timestep_and_prompt_file(sd_dir, tmp_path):
    from vega3d.standin.towers import save_tiny_sd21

    enc = build_encoder("sd21", model=sd_dir, height=64, width=64)
    a = enc(FRAMES)
    assert torch.equal(a, build_encoder("sd21", model=sd_dir, height=64, width=64)(FRAMES))  # same seed: same grids
    assert not torch.allclose(a, build_encoder("sd21", model=sd_dir, height=64, width=64, seed=1)(FRAMES))
    later = build_encoder("sd21", model=sd_dir, height=64, width=64, timestep=500)
    latents = enc.encode(FRAMES)  # one VAE pass serves every timestep
    assert torch.equal(enc.from_latents(latents, timestep=500), later(FRAMES))
    assert enc.config_at(timestep=500) == later.config
    assert enc.config["stand_in"] is True and enc.config["prompt"]["source"] == "text_encoder"
    # a folder with a prompt file instead of the text encoder
    other = save_tiny_sd21(tmp_path / "noprompt", with_text_encoder=False)
    assert build_encoder("sd21", model=other, height=64, width=64).config["prompt"]["source"].endswith(".safetensors")
    with pytest.raises(Vega3DError, match=r"context of shape \(5, 16\); expected \(77, 16\)"):
        build_encoder("sd21", model=sd_dir, height=64, width=64, prompt_embedding=torch.zeros(5, 16))


def test_sd21_grid_follows_the_pixel_map(sd_dir):
    """The grids are the stock forward's on the whole frame (test above); painting a box moves the
    features on its side of the frame, for a coarse and a fine block."""
    for block, grid in (("up1", (4, 8)), ("up2", (8, 16))):  # 16 and 8 input px per cell
        enc = build_encoder("sd21", model=sd_dir, block=block, height=64, width=128, timestep=10)
        assert enc(FRAMES).shape[1:3] == grid
        assert_change_on_its_side(enc, FRAMES)


def test_sd21_errors(sd_dir, tmp_path):
    with pytest.raises(Vega3DError, match=r"block 'up9'; expected one of \['down0'"):
        build_encoder("sd21", model=sd_dir, block="up9")
    with pytest.raises(Vega3DError, match="multiples of 64"):
        build_encoder("sd21", model=sd_dir, height=100)
    with pytest.raises(Vega3DError, match=r"timestep 1000; expected an integer in \[0, 999\]"):
        build_encoder("sd21", model=sd_dir, timestep=1000)
    with pytest.raises(Vega3DError, match="missing unet/config.json"):
        build_encoder("sd21", model=tmp_path)


def test_svd_equals_hooks_on_the_stock_forward(svd_dir):
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionModelWithProjection

    enc = build_encoder("svd", model=svd_dir, block="up1", timestep=261, height=64, width=64, clip_frames=2, seed=5)
    grids = enc.blocks(FRAMES, ["down2", "up1"])
    assert torch.equal(grids["up1"], enc(FRAMES)) and grids["up1"].shape == (3, 4, 4, 64)
    unet = UNetSpatioTemporalConditionModel.from_pretrained(svd_dir / "unet").eval()
    vae = AutoencoderKLTemporalDecoder.from_pretrained(svd_dir / "vae").eval()
    clip = CLIPVisionModelWithProjection.from_pretrained(svd_dir / "image_encoder").eval()
    sched = EulerDiscreteScheduler.from_pretrained(svd_dir / "scheduler")
    a = sched.alphas_cumprod[261]
    sched.set_timesteps(sigmas=[float(((1 - a) / a) ** 0.5), 0.0])  # the library's own c_noise and input scaling
    t = sched.timesteps[0]
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    px = _resize(FRAMES, (64, 64)) * 2 - 1
    eps = torch.stack([torch.randn(4, 8, 8, generator=g) for g in [torch.Generator().manual_seed(5)] for _ in range(3)])
    aug_gen = torch.Generator().manual_seed(6)
    refs = {"down2": [], "up1": []}
    with torch.no_grad():
        z = vae.encode(px).latent_dist.mode() * vae.config.scaling_factor
        for s, e in [(0, 2), (2, 3)]:  # clips of 2 frames, conditioned on their first frame
            cond = vae.encode(px[s : s + 1] + 0.02 * torch.randn(1, 3, 64, 64, generator=aug_gen)).latent_dist.mode()
            emb = clip(pixel_values=(_resize(FRAMES[s : s + 1], (32, 32)) - mean) / std).image_embeds[:, None]
            x = sched.scale_model_input(z[s:e] + sched.sigmas[0] * eps[s:e], t)
            sample = torch.cat([x, cond.expand(e - s, -1, -1, -1)], 1)[None]
            got, handles = _hooked(unet, {"down2": unet.down_blocks[2], "up1": unet.up_blocks[1]})
            unet(sample, t, encoder_hidden_states=emb, added_time_ids=torch.tensor([[6.0, 127.0, 0.02]]))
            [h.remove() for h in handles]
            for k in refs:
                refs[k].append(got[k].permute(0, 2, 3, 1))
    for k, ref in refs.items():
        torch.testing.assert_close(grids[k], torch.cat(ref), rtol=1e-4, atol=1e-4)


def test_svd_clips_seed_and_geometry(svd_dir):
    enc = build_encoder("svd", model=svd_dir, block="up2", height=64, width=128, clip_frames=3)
    a = enc(FRAMES)
    assert torch.equal(a, build_encoder("svd", model=svd_dir, block="up2", height=64, width=128, clip_frames=3)(FRAMES))
    one = build_encoder("svd", model=svd_dir, block="up2", height=64, width=128, clip_frames=1)(FRAMES)
    assert not torch.allclose(a[1:], one[1:])  # temporal layers see the clip: the split matters
    assert_change_on_its_side(enc, FRAMES)
    assert enc.config["added_time_ids"] == [6.0, 127.0, 0.02] and enc.config["stand_in"] is True
