"""Fusion variants: formulas, gate behaviour, shapes, gradients, errors."""

import math

import pytest
import torch

from vega3d.errors import Vega3DError
from vega3d.fusion import FUSIONS, NO_GATE, build_fusion

D = 16


def streams(*lead, length=6, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(*lead, length, D, generator=g) * 3 + 1).requires_grad_(requires_grad)
    x = (torch.randn(*lead, length, D, generator=g) * 0.5 - 2).requires_grad_(requires_grad)
    return s, x


def ln(x):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],))


def geometry(name, length):
    return {"grid_hw": (2, length // 2)} if name == "cross_attention" else {}


def test_gated_starts_at_half_and_matches_formula():
    torch.manual_seed(0)
    fusion = build_fusion("gated", D)
    s, x = streams(3)
    fused, gate_mean = fusion(s, x)
    assert torch.allclose(gate_mean, torch.full((3,), 0.5))
    assert torch.allclose(fused, 0.5 * ln(s) + 0.5 * ln(x), atol=1e-6)
    # random W, b, LN affine: compare with a direct computation of the paper's formula
    with torch.no_grad():
        for p in fusion.parameters():
            p.normal_()
    fused, gate_mean = fusion(s, x)
    sn = ln(s) * fusion.norm_semantic.weight + fusion.norm_semantic.bias
    xn = ln(x) * fusion.norm_generative.weight + fusion.norm_generative.bias
    g = torch.sigmoid(torch.cat([sn, xn], -1) @ fusion.gate.weight.T + fusion.gate.bias)
    assert g.shape == (3, 6, 1)
    assert torch.allclose(fused, g * sn + (1 - g) * xn, atol=1e-5)
    assert torch.allclose(gate_mean, g.mean(dim=(-2, -1)), atol=1e-6)
    assert g.std() > 0  # the gate really varies per token


@pytest.mark.parametrize("bias, expect", [(40.0, "semantic"), (-40.0, "generative")])
def test_gated_saturated_gate_selects_one_stream(bias, expect):
    fusion = build_fusion("gated", D, gate_bias=bias)
    s, x = streams(2)
    fused, gate_mean = fusion(s, x)
    target = ln(s) if expect == "semantic" else ln(x)
    assert torch.equal(fused, target)
    assert torch.allclose(gate_mean, torch.full((2,), 1.0 if expect == "semantic" else 0.0), rtol=0, atol=1e-12)


def test_channel_gated_has_one_gate_per_channel():
    fusion = build_fusion("channel_gated", D)
    assert fusion.gate.out_features == D
    with torch.no_grad():
        fusion.gate.weight.zero_()
        fusion.gate.bias.copy_(torch.linspace(-3, 3, D))
    s, x = streams(2)
    fused, gate_mean = fusion(s, x)
    g = torch.sigmoid(torch.linspace(-3, 3, D))
    assert torch.allclose(fused, g * ln(s) + (1 - g) * ln(x), atol=1e-6)
    assert torch.allclose(gate_mean, g.mean().expand(2), atol=1e-6)


def test_residual_gated_formula_scale_and_identity():
    fusion = build_fusion("residual_gated", D)
    assert fusion.residual_scale.item() == pytest.approx(0.2)
    s, x = streams(2)
    fused, gate_mean = fusion(s, x)
    # g = 0.5 at init: S + 0.2 * 0.5 * (G - S) on the raw (not normalised) streams
    assert torch.allclose(fused, s + 0.1 * (x - s), atol=1e-6)
    assert torch.allclose(gate_mean, torch.full((2,), 0.5))
    with torch.no_grad():
        for p in fusion.parameters():
            p.normal_()
    assert torch.equal(fusion(s, s.clone())[0], s)  # G == S -> exactly S
    g = torch.sigmoid(
        torch.cat([fusion.norm_semantic(s), fusion.norm_generative(x)], -1) @ fusion.gate.weight.T + fusion.gate.bias
    )
    expect = s + fusion.residual_scale * (1 - g) * (x - s)
    assert torch.allclose(fusion(s, x)[0], expect, atol=1e-5)


def test_add_concat_weighted_sum_formulas():
    s, x = streams(2)
    fused, gm = build_fusion("add", D)(s, x)
    assert torch.equal(fused, s + x) and torch.equal(gm, torch.full((2,), NO_GATE))
    concat = build_fusion("concat", D)
    fused, gm = concat(s, x)
    assert torch.allclose(fused, concat.projection(torch.cat([ln(s), ln(x)], -1)), atol=1e-6)
    assert torch.equal(gm, torch.full((2,), NO_GATE))
    ws = build_fusion("weighted_sum", D)
    fused, gm = ws(s, x)
    assert torch.allclose(fused, 0.5 * s + 0.5 * x) and torch.allclose(gm, torch.full((2,), 0.5))
    with torch.no_grad():
        ws.weight_logit.fill_(math.log(3.0))  # w = 0.75
    fused, gm = ws(s, x)
    assert torch.allclose(fused, 0.75 * s + 0.25 * x, atol=1e-6)
    assert torch.allclose(gm, torch.full((2,), 0.75))


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_shapes_gradients_and_gate_mean(name):
    torch.manual_seed(0)
    fusion = build_fusion(name, D)
    s, x = streams(2, 3, length=4, requires_grad=True)
    fused, gate_mean = fusion(s, x, **geometry(name, 4))
    assert fused.shape == s.shape
    assert gate_mean.shape == (2, 3) and torch.isfinite(gate_mean).all()
    (fused.square().sum() + gate_mean.sum()).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in fusion.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    # 2-D input (L, D): gate_mean is a 0-d tensor
    fused2, gm2 = fusion(s[0, 0].detach(), x[0, 0].detach(), **geometry(name, 4))
    assert fused2.shape == (4, D) and gm2.shape == ()
    assert fusion.has_gate == (name in {"gated", "channel_gated", "residual_gated", "weighted_sum"})


def test_gate_mean_is_per_sample():
    fusion = build_fusion("gated", D)
    with torch.no_grad():
        fusion.gate.weight.normal_()
    s, x = streams(3)
    s[1] = s[0]
    x[1] = x[0]
    _, gm = fusion(s, x)
    single = torch.stack([fusion(s[i], x[i])[1] for i in range(3)])
    assert torch.allclose(gm, single, atol=1e-6)
    assert gm[0] == gm[1] and gm[0] != gm[2]


def test_cross_attention_uses_positions():
    torch.manual_seed(0)
    fusion = build_fusion("cross_attention", D, num_heads=2)
    s, x = streams(1, length=6)
    out, _ = fusion(s, x, grid_hw=(2, 3))
    perm = torch.tensor([5, 3, 4, 0, 2, 1])
    # keys and values move together: without positions attention would not notice
    out_perm, _ = fusion(s, x[:, perm], grid_hw=(2, 3))
    assert not torch.allclose(out, out_perm, atol=1e-4)
    # ... and giving the tokens' true positions restores the result exactly
    pos = torch.stack(torch.meshgrid(torch.arange(2), torch.arange(3), indexing="ij"), -1).reshape(6, 2).float()
    out_pos, _ = fusion(s, x, positions=pos)
    assert torch.allclose(out, out_pos, atol=1e-6)


def test_cross_attention_grid_thw_attends_within_each_frame():
    torch.manual_seed(0)
    fusion = build_fusion("cross_attention", D, num_heads=2)
    s, x = streams(length=12)
    out, _ = fusion(s, x, grid_thw=(2, 2, 3))
    first, _ = fusion(s[:6], x[:6], grid_hw=(2, 3))
    second, _ = fusion(s[6:], x[6:], grid_hw=(2, 3))
    assert torch.allclose(out, torch.cat([first, second]), atol=1e-6)


def test_determinism_same_seed_same_output():
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        fusion = build_fusion("cross_attention", D)
        outs.append(fusion(*streams(2), grid_hw=(3, 2))[0])
    assert torch.equal(outs[0], outs[1])


def test_errors():
    with pytest.raises(Vega3DError, match="valid: gated, add, concat"):
        build_fusion("gatd", D)
    with pytest.raises(Vega3DError, match="bad options"):
        build_fusion("add", D, gate_bias=1.0)
    fusion = build_fusion("gated", D)
    s, x = streams(2)
    # the stream contract is asserted (checked at the callers' edges; forward runs every step)
    with pytest.raises(AssertionError, match=r"\(2, 6, 16\).*\(2, 5, 16\)"):
        fusion(s, x[:, :5])
    with pytest.raises(AssertionError, match=r"hidden_size=8, got shape \(2, 6, 16\)"):
        build_fusion("gated", 8)(s, x)
    with pytest.raises(AssertionError, match="dtype"):
        fusion(s, x.double())
    with pytest.raises(AssertionError, match=r"\(\.\.\., L, D\), got shape \(16,\)"):
        fusion(s[0, 0], x[0, 0])
    with pytest.raises(Vega3DError, match="hidden_size must be positive"):
        build_fusion("add", 0)
    ca = build_fusion("cross_attention", D, num_heads=2)
    with pytest.raises(AssertionError, match="exactly one"):
        ca(s, x)
    with pytest.raises(AssertionError, match="exactly one"):
        ca(s, x, grid_hw=(2, 3), positions=torch.zeros(6, 2))
    with pytest.raises(AssertionError, match="describes 4 tokens but the streams have L=6"):
        ca(s, x, grid_hw=(2, 2))
    with pytest.raises(AssertionError, match=r"\(6, 2\)"):
        ca(s, x, positions=torch.zeros(5, 2))
    with pytest.raises(Vega3DError, match="divisible"):
        build_fusion("cross_attention", 18, num_heads=4)
