"""Fusion of the generative stream into the MLLM's visual tokens.

- :func:`build_fusion` — one of :data:`FUSIONS` by name; every fusion's
  ``forward(semantic, generative, **geometry)`` takes two (..., L, D) streams and returns
  ``(fused (..., L, D), gate_mean (...,))``.
- :func:`build_projector` — generative width -> LLM width (LLaVA's ``mlp2x_gelu``; the released
  2 x 2 patch merger ``merger_mlp``, :class:`WindowMergerMLP`).
- :mod:`vega3d.fusion.align` — resample a full-frame feature grid onto an MLLM's token
  grid in its token order (Qwen2.5-VL merged tokens, square SigLIP grids).

See docs/fusion.md for the formulas and the geometry.
"""

from __future__ import annotations

from torch import nn

from vega3d.errors import Vega3DError
from vega3d.fusion.align import align_to_grid, align_to_qwen_image, align_to_qwen_tokens, qwen_grid_thw
from vega3d.fusion.base import NO_GATE, Fusion
from vega3d.fusion.cross_attention import CrossAttentionFusion
from vega3d.fusion.gated import AdaptiveGatedFusion, ChannelGatedFusion, ResidualGatedFusion
from vega3d.fusion.merger import WindowMergerMLP
from vega3d.fusion.projector import build_projector
from vega3d.fusion.variants import AddFusion, ConcatFusion, WeightedSumFusion

FUSIONS: dict[str, type[Fusion]] = {
    "gated": AdaptiveGatedFusion,
    "add": AddFusion,
    "concat": ConcatFusion,
    "weighted_sum": WeightedSumFusion,
    "cross_attention": CrossAttentionFusion,
    "channel_gated": ChannelGatedFusion,
    "residual_gated": ResidualGatedFusion,
}


def build_fusion(name: str, hidden_size: int, **kw) -> nn.Module:
    """The fusion called ``name`` at width ``hidden_size``; ``kw`` go to its constructor."""
    if name not in FUSIONS:
        raise Vega3DError(f"build_fusion: unknown fusion {name!r}; valid: {', '.join(FUSIONS)}")
    try:
        return FUSIONS[name](hidden_size, **kw)
    except TypeError as exc:  # options its constructor does not take
        raise Vega3DError(
            f"build_fusion: bad options {sorted(kw)} for fusion {name!r}: {exc}; valid: {', '.join(FUSIONS)}"
        ) from exc


__all__ = [
    "FUSIONS",
    "NO_GATE",
    "AdaptiveGatedFusion",
    "AddFusion",
    "ChannelGatedFusion",
    "ConcatFusion",
    "CrossAttentionFusion",
    "Fusion",
    "ResidualGatedFusion",
    "WeightedSumFusion",
    "WindowMergerMLP",
    "align_to_grid",
    "align_to_qwen_image",
    "align_to_qwen_tokens",
    "build_fusion",
    "build_projector",
    "qwen_grid_thw",
]
