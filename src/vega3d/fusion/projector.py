"""Projector from the generative width (1536 for Wan2.1-1.3B) to the LLM width.

``build_projector("mlp2x_gelu", in_dim, out_dim)`` is LLaVA's: Linear(in, out) -> GELU ->
Linear(out, out). ``"mlpNx_gelu"`` gives N linear layers with GELU between them (LLaVA's
pattern); ``"linear"`` is one Linear(in, out). Default PyTorch initialisation.
"""

from __future__ import annotations

import re

from torch import nn

from vega3d.errors import Vega3DError

PROJECTORS = ("linear", "mlp2x_gelu", "mlpNx_gelu (N >= 1)")


def build_projector(name: str, in_dim: int, out_dim: int) -> nn.Module:
    """A module mapping (..., in_dim) -> (..., out_dim)."""
    if int(in_dim) <= 0 or int(out_dim) <= 0:
        raise Vega3DError(f"build_projector: in_dim and out_dim must be positive, got {in_dim}, {out_dim}")
    if name == "linear":
        return nn.Linear(in_dim, out_dim)
    match = re.fullmatch(r"mlp(\d+)x_gelu", str(name))
    if match is None or int(match.group(1)) < 1:
        raise Vega3DError(f"build_projector: unknown projector {name!r}; valid: {', '.join(PROJECTORS)}")
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
    for _ in range(int(match.group(1)) - 1):
        layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
    return nn.Sequential(*layers)
