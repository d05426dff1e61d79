"""The vision towers: transformers' DINOv2/SigLIP against timm's own forward, and the key maps both ways."""

import pytest
import torch

from tests.policy.timm_reference import import_timm
from vega3d.policy.folder import KNOWN_TOWERS, TowerSpec
from vega3d.policy.vision import FusedVisionBackbone, build_tower, hf_to_timm, timm_to_hf, tower_features

DINO = TowerSpec("dinov2_reg", 16, 3, 2, 64, registers=4)
SIGLIP = TowerSpec("siglip", 24, 3, 2, 96)


def _timm_tower(timm, spec: TowerSpec, seed: int = 0):
    """timm's VisionTransformer with the arguments of timm's model definitions (tiny widths), random weights,
    LayerScale renamed as prismatic saves it (``gamma`` -> ``scale_factor``)."""
    from timm.models.vision_transformer import VisionTransformer

    extra = (dict(init_values=1e-5, reg_tokens=spec.registers, no_embed_class=True) if spec.kind == "dinov2_reg"
             else dict(class_token=False, global_pool="map"))  # fmt: skip
    torch.manual_seed(seed)
    model = VisionTransformer(img_size=224, patch_size=14, embed_dim=spec.hidden_size, depth=spec.depth,
                              num_heads=spec.num_heads, mlp_ratio=spec.mlp_size / spec.hidden_size, num_classes=0,
                              **extra).eval()  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2, generator=torch.Generator().manual_seed(p.numel()))
    return model, {k.replace(".gamma", ".scale_factor"): v for k, v in model.state_dict().items()}


@pytest.mark.parametrize("spec", [DINO, SIGLIP], ids=["dinov2", "siglip"])
def test_towers_compute_what_timm_computes(spec):
    timm = import_timm()
    if timm is None:
        pytest.skip("timm is not installed (optional reference: pip install --no-deps timm==1.0.31)")
    reference, state = _timm_tower(timm, spec)
    tower = build_tower(spec).eval()
    tower.load_state_dict(timm_to_hf(state, spec), strict=True)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # prismatic's featurizer: get_intermediate_layers(n={depth - 2}), prefix tokens dropped, no norm
        expected = reference.get_intermediate_layers(x, n={spec.depth - 2})[0]
        torch.testing.assert_close(tower_features(tower, x), expected, rtol=1e-5, atol=1e-5)
        out = tower(pixel_values=x)
        if spec.kind == "dinov2_reg":  # the last block and the final norm map too
            torch.testing.assert_close(out.last_hidden_state, reference.forward_features(x), rtol=1e-5, atol=1e-5)
        else:  # and SigLIP's attention-pool head (attn_pool.q + kv -> in_proj)
            pooled = reference.forward_head(reference.forward_features(x), pre_logits=True)
            torch.testing.assert_close(out.pooler_output, pooled, rtol=1e-5, atol=1e-5)
    assert expected.shape == (2, 256, spec.hidden_size)


@pytest.mark.parametrize("spec", [DINO, SIGLIP], ids=["dinov2", "siglip"])
def test_key_maps_round_trip_and_name_the_released_keys(spec):
    tower = build_tower(spec)
    with torch.no_grad():  # timm's DINOv2 adds no position to the class token
        if spec.kind == "dinov2_reg":
            tower.embeddings.position_embeddings[:, 0] = 0
    hf_state = tower.state_dict()
    released = hf_to_timm(hf_state, spec)
    back = timm_to_hf(released, spec)
    assert set(back) == set(hf_state) and all(torch.equal(back[k], hf_state[k]) for k in hf_state)
    block = {k.removeprefix("blocks.0.") for k in released if k.startswith("blocks.0.")}
    common = {
        f"{m}.{s}"
        for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
        for s in ("weight", "bias")
    }
    assert block == (common | {"ls1.scale_factor", "ls2.scale_factor"} if spec.kind == "dinov2_reg" else common)
    top = {k for k in released if not k.startswith("blocks.")}
    if spec.kind == "dinov2_reg":
        assert top == {"cls_token", "reg_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                       "norm.weight", "norm.bias"}  # fmt: skip
        assert released["pos_embed"].shape == (1, 256, spec.hidden_size)
    else:
        assert "attn_pool.kv.weight" in top and released["attn_pool.kv.weight"].shape == (
            2 * spec.hidden_size,
            spec.hidden_size,
        )
    timm = import_timm()
    if timm is not None:  # the same names and shapes as timm's own module
        _, state = _timm_tower(timm, spec)
        assert {k: tuple(v.shape) for k, v in released.items()} == {k: tuple(v.shape) for k, v in state.items()}


def test_dinov2_class_position_must_be_zero_to_write_the_released_layout():
    tower = build_tower(DINO)
    with pytest.raises(AssertionError, match="class token's position"):
        hf_to_timm(tower.state_dict(), DINO)


def test_fused_backbone_concatenates_dinov2_then_siglip_per_image():
    backbone = FusedVisionBackbone((DINO, SIGLIP)).eval()
    a, b = torch.randn(2, 1, 6, 224, 224, generator=torch.Generator().manual_seed(0)).unbind(0)
    with torch.no_grad():
        out = backbone(torch.cat([a, b], dim=1))
        first = torch.cat(
            [tower_features(backbone.featurizer, a[:, :3]), tower_features(backbone.fused_featurizer, a[:, 3:])], -1
        )
        second = backbone(b)
    assert out.shape == (1, 512, 40)
    torch.testing.assert_close(out[:, :256], first)
    torch.testing.assert_close(out[:, 256:], second)


def test_real_size_towers_have_timms_parameter_counts():
    """timm 1.0.31's vit_large_patch14_reg4_dinov2 (img_size 224) has 303,230,976 parameters and
    vit_so400m_patch14_siglip_224 (num_classes 0) 427,680,704; transformers' DINOv2 adds the class token's
    position row (1024, fixed at zero). Built on the meta device."""
    with torch.device("meta"):
        dino = build_tower(KNOWN_TOWERS["vit_large_patch14_reg4_dinov2.lvd142m"])
        siglip = build_tower(KNOWN_TOWERS["vit_so400m_patch14_siglip_224"])
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(dino) == 303_230_976 + 1024
    assert count(siglip) == 427_680_704
    timm = import_timm()
    if timm is not None:
        with torch.device("meta"):
            for model_id, ours in (("vit_large_patch14_reg4_dinov2", dino), ("vit_so400m_patch14_siglip_224", siglip)):
                ref = timm.create_model(model_id, pretrained=False, num_classes=0, img_size=224)
                assert count(ref) + (1024 if ours is dino else 0) == count(ours)
