"""Projector from the generative width (1536 for Wan2.1-1.3B) to the LLM width.

``build_projector("mlp2x_gelu", in_dim, out_dim)`` is LLaVA's: Linear(in, out) -> GELU ->
Linear(out, out). ``"mlpNx_gelu"`` gives N linear layers with GELU between them (LLaVA's
pattern); ``"linear"`` is one Linear(in, out). Default PyTorch initialisation.
"""

from __future__ import annotations

import re

from torch import nn

from vega3d.errors import Vega3DError

#: The projector names: ``linear`` or ``mlpNx_gelu`` with N >= 1 (group 1: N).
PROJECTOR_NAME = re.compile(r"linear|mlp([1-9]\d*)x_gelu")
#: How :data:`PROJECTOR_NAME` reads in messages.
PROJECTORS = "linear, mlp2x_gelu, mlpNx_gelu (N >= 1)"


def build_projector(name: str, in_dim: int, out_dim: int) -> nn.Module:
    """A module mapping (..., in_dim) -> (..., out_dim)."""
    match = PROJECTOR_NAME.fullmatch(str(name))
    if match is None or int(in_dim) <= 0 or int(out_dim) <= 0:
        raise Vega3DError(
            f"build_projector: got {name!r} from {in_dim} to {out_dim}; expected a projector "
            f"(valid: {PROJECTORS}) between positive widths"
        )
    if match.group(1) is None:
        return nn.Linear(in_dim, out_dim)
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
    for _ in range(int(match.group(1)) - 1):
        layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
    return nn.Sequential(*layers)
