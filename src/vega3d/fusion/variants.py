"""Gate-free fusions the paper ablates: add, concat + linear, learned weighted sum.

Each follows the released code's arithmetic (``src/qwen_vl/model/feature_fusion.py``)
except where noted. "add" and "concat" have no gate: they report ``gate_mean`` =
:data:`vega3d.fusion.base.NO_GATE` (0.5) and ``has_gate = False``.
"""

from __future__ import annotations

import torch
from torch import nn

from vega3d.fusion.base import NO_GATE, Fusion


class AddFusion(Fusion):
    """``S + G`` on the raw streams; no parameters."""

    has_gate = False

    def fuse(self, semantic, generative, **geometry):
        return semantic + generative, self.constant_gate(semantic, NO_GATE)


class ConcatFusion(Fusion):
    """``Linear([LN(S); LN(G)])`` from 2D to D (default ``nn.Linear`` init)."""

    has_gate = False

    def __init__(self, hidden_size: int):
        super().__init__(hidden_size)
        self.norm_semantic = nn.LayerNorm(self.hidden_size)
        self.norm_generative = nn.LayerNorm(self.hidden_size)
        self.projection = nn.Linear(2 * self.hidden_size, self.hidden_size)

    def fuse(self, semantic, generative, **geometry):
        x = torch.cat([self.norm_semantic(semantic), self.norm_generative(generative)], dim=-1)
        return self.projection(x), self.constant_gate(semantic, NO_GATE)


class WeightedSumFusion(Fusion):
    """``w · S + (1 - w) · G`` on the raw streams with one learned ``w = sigmoid(weight_logit)``.

    ``weight_logit`` starts at 0 (w = 0.5, as the released 0.5/0.5 pair). The released code
    learns two free scalars and divides by their sum, which is unbounded and blows up as
    the sum nears 0; the sigmoid keeps w in (0, 1) with the same initial blend.
    ``gate_mean`` is w, per sample.
    """

    def __init__(self, hidden_size: int):
        super().__init__(hidden_size)
        self.weight_logit = nn.Parameter(torch.zeros(()))

    def fuse(self, semantic, generative, **geometry):
        w = torch.sigmoid(self.weight_logit)
        wt = w.to(semantic.dtype)
        return wt * semantic + (1 - wt) * generative, w.float().expand(semantic.shape[:-2])
