"""The released 2 x 2 patch merger (merger_mlp), the release's bilinear resampling, gate init options."""

import pytest
import torch
import torch.nn.functional as F

from vega3d.errors import Vega3DError
from vega3d.fusion import align_to_qwen_tokens, build_fusion, build_projector


def test_merger_is_rmsnorm_per_patch_then_mlp_on_the_window():
    merger = build_projector("merger_mlp", 8, 12, hidden=10)
    assert merger.merge_window == 2
    assert sorted(merger.state_dict()) == ["ln_q.weight", "mlp.0.bias", "mlp.0.weight", "mlp.2.bias", "mlp.2.weight"]
    with torch.no_grad():
        for p in merger.parameters():
            p.normal_()
    x = torch.randn(3, 5, 32)  # (..., 4 patches x 8 channels)
    patches = x.reshape(3, 5, 4, 8)
    normed = patches * torch.rsqrt(patches.pow(2).mean(-1, keepdim=True) + 1e-6) * merger.ln_q.weight
    hidden = F.gelu(normed.reshape(3, 5, 32) @ merger.mlp[0].weight.T + merger.mlp[0].bias)  # exact (erf) GELU
    expect = hidden @ merger.mlp[2].weight.T + merger.mlp[2].bias
    assert torch.allclose(merger(x), expect, atol=1e-5)


def test_merger_init_is_the_release_runs_start():
    torch.manual_seed(0)
    merger = build_projector("merger_mlp", 64, 96, hidden=128)
    w = merger.mlp[0].weight
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
    assert torch.equal(merger.mlp[0].bias, torch.zeros(128)) and torch.equal(merger.ln_q.weight, torch.ones(64))
    default = build_projector("merger_mlp", 64, 96, hidden=128, init_std=None)  # PyTorch's Linear init
    assert default.mlp[0].bias.abs().sum() > 0


@pytest.mark.parametrize(
    "name,options,match",
    [
        ("mlp2x_gelu", {"hidden": 4}, "takes no options"),
        ("merger_mlp", {"hiden": 4}, "bad options"),
        ("merger_mlp", {"hidden": 0}, "positive integer widths"),
        ("merger_mlp", {"init_std": -1.0}, "init_std > 0"),
    ],
)
def test_projector_options_are_checked(name, options, match):
    with pytest.raises(Vega3DError, match=match):
        build_projector(name, 4, 6, **options)


def test_windows_with_release_bilinear_resampling():
    """keep_merge_window + "bilinear" = the release: F.interpolate (align_corners=False, no antialias)
    onto the patch grid, then (h/2, 2, w/2, 2) → (h/2, w/2, 2, 2) windows, flattened per token."""
    grid = torch.randn(1, 10, 13, 4, generator=torch.Generator().manual_seed(0))  # one image, Wan grid 10 x 13
    thw = (1, 8, 6)  # Qwen patch grid 8 x 6 → 4 x 3 tokens
    ours = align_to_qwen_tokens(grid, thw, keep_merge_window=True, interpolation="bilinear")
    up = F.interpolate(grid.permute(0, 3, 1, 2), size=(8, 6), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    windows = up.reshape(4, 2, 3, 2, 4).permute(0, 2, 1, 3, 4).reshape(12, 16)
    assert torch.allclose(ours, windows, atol=1e-6)
    area = align_to_qwen_tokens(grid, thw, keep_merge_window=True)  # vega3d's own: antialiased, another result
    assert not torch.allclose(area, windows, atol=1e-3)
    same = torch.randn(1, 8, 6, 4)
    for mode in ("area", "bilinear"):  # equal sizes: the identity either way
        out = align_to_qwen_tokens(same, thw, keep_merge_window=True, interpolation=mode)
        assert torch.equal(out, same[0].reshape(4, 2, 3, 2, 4).permute(0, 2, 1, 3, 4).reshape(12, 16))
    with pytest.raises(Vega3DError, match="interpolation 'nearest'; valid: area, bilinear"):
        align_to_qwen_tokens(grid, thw, interpolation="nearest")


@pytest.mark.parametrize("name", ["gated", "channel_gated", "residual_gated"])
def test_gate_init_std(name):
    assert torch.equal(build_fusion(name, 64).gate.weight, torch.zeros_like(build_fusion(name, 64).gate.weight))
    torch.manual_seed(0)
    w = build_fusion(name, 64, gate_init_std=0.02).gate.weight
    assert abs(w.std().item() - 0.02) < 0.004 and w.abs().sum() > 0
    with pytest.raises(Vega3DError, match="gate_init_std must be >= 0"):
        build_fusion(name, 64, gate_init_std=-0.1)


def test_release_widths_give_the_release_parameter_counts():
    """Wan2.1-1.3B (1536) into Qwen2.5-VL-7B (3584): the counts the released state dict implies."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        merger = build_projector("merger_mlp", 1536, 3584)
        fusion = build_fusion("residual_gated", 3584)
    assert [tuple(p.shape) for p in merger.parameters()] == [(1536,), (4096, 6144), (4096,), (3584, 4096), (3584,)]
    assert sum(p.numel() for p in merger.parameters()) == 39_855_104
    assert sum(p.numel() for p in fusion.parameters()) == 21_506
