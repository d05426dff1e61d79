"""Gated fusions: the paper's per-token gate, its per-channel ablation, the released residual form.

All three compute a gate from the layer-normalised streams,
``g = sigmoid(W · [LN(S); LN(G)] + b)``, and differ in its width and in what it mixes:

- :class:`AdaptiveGatedFusion` ("gated", the paper's): scalar g per token (W is 1 x 2D),
  output ``g · LN(S) + (1 - g) · LN(G)``.
- :class:`ChannelGatedFusion` ("channel_gated"): one g per token and channel (W is D x 2D),
  same output formula. The released code calls this one "gated" and the paper's
  per-token gate "token_gated".
- :class:`ResidualGatedFusion` ("residual_gated", the released spatial-reasoning branch,
  ``token_gated_residual`` there): scalar g per token, but the mix uses the *raw* streams,
  ``S + s · (1 - g) · (G - S)`` with a learnable scalar ``s`` initialised at 0.2; LN only
  feeds the gate, exactly as in the released ``src/qwen_vl/model/feature_fusion.py``.
  So the output is S itself when G == S or s == 0, and the MLLM's pretrained visual
  tokens keep their scale.

Initialisation (ours, stated): W = 0 and b = ``gate_bias`` (default 0), so every token
starts at exactly g = 0.5 — what the released code's default ``nn.Linear`` init gives on
average (there ``g ≈ 0.5`` with a small random spread) — without a random draw, and W
still receives gradient from the first step. Pass e.g. ``gate_bias=2.0`` to start
leaning on the semantic stream (g ≈ 0.88). ``gate_init_std=0.02`` draws W from N(0, 0.02²)
instead (global RNG), which is what the released spatial-reasoning training run started from
(transformers' ``_init_weights`` on the fusion, whose keys the base checkpoint lacks; its bias
0). LN affine parameters start at weight 1, bias 0.

The released module names differ from ours: ``norm1`` / ``norm2`` / ``gate_projection.0`` are
``norm_semantic`` / ``norm_generative`` / ``gate`` here (:data:`RELEASE_NAMES`).
"""

from __future__ import annotations

import torch
from torch import nn

from vega3d.errors import Vega3DError
from vega3d.fusion.base import Fusion

#: The released ``FeatureFusionModule`` parameter names → ours (``residual_scale`` is the same).
RELEASE_NAMES = {"norm1.": "norm_semantic.", "norm2.": "norm_generative.", "gate_projection.0.": "gate."}


class _GateMixin(Fusion):
    def __init__(self, hidden_size: int, gate_width: int, gate_bias: float, gate_init_std: float = 0.0):
        super().__init__(hidden_size)
        if not float(gate_init_std) >= 0:
            raise Vega3DError(f"{type(self).__name__}: gate_init_std must be >= 0, got {gate_init_std}")
        self.norm_semantic = nn.LayerNorm(self.hidden_size)
        self.norm_generative = nn.LayerNorm(self.hidden_size)
        self.gate = nn.Linear(2 * self.hidden_size, gate_width)
        if gate_init_std:
            nn.init.normal_(self.gate.weight, std=float(gate_init_std))
        else:
            nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, float(gate_bias))

    def normed_gate(self, semantic, generative):
        """Returns ``(LN(S), LN(G), g)`` with g of shape (..., L, gate_width)."""
        s, g_ = self.norm_semantic(semantic), self.norm_generative(generative)
        gate = torch.sigmoid(self.gate(torch.cat([s, g_], dim=-1)))
        return s, g_, gate

    @staticmethod
    def per_sample(gate: torch.Tensor) -> torch.Tensor:
        """Mean gate over tokens (and channels): (..., L, k) -> (...,) float32."""
        return gate.float().mean(dim=(-2, -1))


class AdaptiveGatedFusion(_GateMixin):
    """The paper's adaptive gate: ``g · LN(S) + (1 - g) · LN(G)``, one scalar g per token.

    ``forward(S, G)`` with S, G (..., L, D) returns ``(fused (..., L, D), gate_mean (...,))``.
    """

    def __init__(self, hidden_size: int, *, gate_bias: float = 0.0, gate_init_std: float = 0.0):
        super().__init__(hidden_size, 1, gate_bias, gate_init_std)

    def fuse(self, semantic, generative, **geometry):
        s, g_, gate = self.normed_gate(semantic, generative)
        return gate * s + (1 - gate) * g_, self.per_sample(gate)


class ChannelGatedFusion(_GateMixin):
    """Per-channel gate: like :class:`AdaptiveGatedFusion` with g of shape (..., L, D)."""

    def __init__(self, hidden_size: int, *, gate_bias: float = 0.0, gate_init_std: float = 0.0):
        super().__init__(hidden_size, hidden_size, gate_bias, gate_init_std)

    def fuse(self, semantic, generative, **geometry):
        s, g_, gate = self.normed_gate(semantic, generative)
        return gate * s + (1 - gate) * g_, self.per_sample(gate)


class ResidualGatedFusion(_GateMixin):
    """Released spatial-reasoning fusion: ``S + s · (1 - g) · (G - S)`` on the raw streams.

    g (one per token) is computed from LN(S), LN(G); ``s`` is a learnable scalar
    (``residual_scale``, initialised to ``scale_init`` = 0.2 as released).
    """

    def __init__(
        self, hidden_size: int, *, gate_bias: float = 0.0, scale_init: float = 0.2, gate_init_std: float = 0.0
    ):
        super().__init__(hidden_size, 1, gate_bias, gate_init_std)
        self.residual_scale = nn.Parameter(torch.tensor(float(scale_init)))

    def fuse(self, semantic, generative, **geometry):
        _, _, gate = self.normed_gate(semantic, generative)
        scale = self.residual_scale.to(semantic.dtype)
        return semantic + scale * (1 - gate) * (generative - semantic), self.per_sample(gate)
