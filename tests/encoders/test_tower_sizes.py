"""The real-size configs of every tower, built on the meta device (no memory, no weights): the
parameter counts match the published models, so the stand-ins' architectures are the real ones
at another width. Each count cites where it is published."""

import pytest
import torch

# The real configs (the config.json of each published checkpoint, fields that differ from the
# library defaults).
SD21_UNET = dict(sample_size=96, block_out_channels=(320, 640, 1280, 1280), attention_head_dim=(5, 10, 20, 20),
                 cross_attention_dim=1024, use_linear_projection=True,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)  # fmt: skip
WAN13B = dict(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, num_layers=30, text_dim=4096)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _meta(build):
    with torch.device("meta"):
        return build()


def test_sd21_unet_is_865m():
    # Stability AI, Stable Diffusion 2 release / model card: "865M UNet" (the same UNet in 2.0 and 2.1)
    from diffusers import UNet2DConditionModel

    assert _count(_meta(lambda: UNet2DConditionModel(**SD21_UNET))) == 865_910_724


def test_svd_unet_is_1_52b():
    # Blattmann et al. 2023, "Stable Video Diffusion": a 1.52B-parameter video UNet (diffusers' defaults
    # of UNetSpatioTemporalConditionModel are stable-video-diffusion-img2vid's unet/config.json)
    from diffusers import UNetSpatioTemporalConditionModel

    n = _count(_meta(UNetSpatioTemporalConditionModel))
    assert n == 1_524_623_082 and round(n / 1e9, 2) == 1.52


def test_wan_vace_13b_is_t2v_plus_its_control_branch():
    # Wan2.1-T2V-1.3B: 1,418,996,800 parameters (shared/reference/paper_numbers.json, wan2_1_t2v_1_3b.params,
    # from the Wan2.1 release); Wan2.1-VACE-1.3B keeps that DiT and adds a control block at every other layer
    # (diffusers scripts/convert_wan_to_diffusers.py, "Wan-VACE-1.3B": vace_layers 0, 2, .., 28; 96 input channels).
    from diffusers import WanTransformer3DModel, WanVACETransformer3DModel

    vace = _meta(lambda: WanVACETransformer3DModel(**WAN13B, vace_layers=list(range(0, 30, 2)), vace_in_channels=96))
    branch = _count(vace.vace_blocks) + _count(vace.vace_patch_embedding)
    assert _count(vace) - branch == _count(_meta(lambda: WanTransformer3DModel(**WAN13B))) == 1_418_996_800
    assert len(vace.vace_blocks) == 15 and _count(vace) == 2_153_972_032  # no published total: the name counts the base


def test_wan_vae_is_127m():
    # Wan technical report (arXiv 2503.20314), Wan-VAE: 127M parameters
    from diffusers import AutoencoderKLWan

    assert round(_count(_meta(AutoencoderKLWan)) / 1e6) == 127


@pytest.mark.parametrize(
    "name,config,published",
    [
        # Assran et al. 2025, "V-JEPA 2": encoders ViT-L 300M, ViT-g 1B (vjepa2-vitl-fpc64-256 = VJEPA2Config's
        # defaults; vjepa2-vitg-fpc64-256: width 1408, 40 layers, 22 heads, MLP ratio 48/11)
        ("ViT-L", {}, 300e6),
        ("ViT-g", dict(hidden_size=1408, num_hidden_layers=40, num_attention_heads=22, mlp_ratio=48 / 11), 1e9),
    ],
)
def test_vjepa2_encoders(name, config, published):
    from transformers import VJEPA2Config, VJEPA2Model

    model = _meta(lambda: VJEPA2Model(VJEPA2Config(**config)))
    assert abs(_count(model.encoder) - published) / published < 0.02  # the encoder: the predictor is not used


def test_dinov3_vitl16_is_300m():
    # Siméoni et al. 2025, "DINOv3", model card of dinov3-vitl16-pretrain-lvd1689m: ViT-L/16 distilled, 300M
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    cfg = DINOv3ViTConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                          patch_size=16, num_register_tokens=4)  # fmt: skip
    n = _count(_meta(lambda: DINOv3ViTModel(cfg)))
    assert abs(n - 300e6) / 300e6 < 0.02
