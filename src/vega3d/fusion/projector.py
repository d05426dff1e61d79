"""Projector from the generative width (1536 for Wan2.1-1.3B) to the LLM width.

``build_projector("mlp2x_gelu", in_dim, out_dim)`` is LLaVA's: Linear(in, out) -> GELU ->
Linear(out, out). ``"mlpNx_gelu"`` gives N linear layers with GELU between them (LLaVA's
pattern); ``"linear"`` is one Linear(in, out). Default PyTorch initialisation; these take no
options. ``"merger_mlp"`` is the released spatial-reasoning merger, which projects each
token's 2 x 2 window of patches (:class:`vega3d.fusion.merger.WindowMergerMLP`; options
``hidden``, ``merge_size``, ``eps``, ``init_std``).
"""

from __future__ import annotations

import re

from torch import nn

from vega3d.errors import Vega3DError

#: The projector names: ``linear``, ``mlpNx_gelu`` with N >= 1 (group 1: N), or ``merger_mlp``.
PROJECTOR_NAME = re.compile(r"linear|mlp([1-9]\d*)x_gelu|merger_mlp")
#: How :data:`PROJECTOR_NAME` reads in messages.
PROJECTORS = "linear, mlp2x_gelu, mlpNx_gelu (N >= 1), merger_mlp"


def build_projector(name: str, in_dim: int, out_dim: int, **options) -> nn.Module:
    """A module mapping (..., in_dim) -> (..., out_dim); ``merger_mlp`` maps (..., m²·in_dim)
    windows (its ``merge_window`` attribute is m) and takes ``options``."""
    match = PROJECTOR_NAME.fullmatch(str(name))
    if match is None or int(in_dim) <= 0 or int(out_dim) <= 0:
        raise Vega3DError(
            f"build_projector: got {name!r} from {in_dim} to {out_dim}; expected a projector "
            f"(valid: {PROJECTORS}) between positive widths"
        )
    if name == "merger_mlp":
        from vega3d.fusion.merger import WindowMergerMLP

        try:
            return WindowMergerMLP(int(in_dim), int(out_dim), **options)
        except TypeError as exc:
            raise Vega3DError(
                f"build_projector: bad options {sorted(options)} for projector 'merger_mlp': {exc}"
            ) from None
    if options:
        raise Vega3DError(f"build_projector: projector {name!r} takes no options, got {sorted(options)}")
    if match.group(1) is None:
        return nn.Linear(in_dim, out_dim)
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
    for _ in range(int(match.group(1)) - 1):
        layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
    return nn.Sequential(*layers)
