"""What every fusion shares: the input contract and the "no gate" constant.

A fusion blends two token streams of the same shape ``(..., L, D)``: ``semantic`` (the
MLLM's own visual tokens, S) and ``generative`` (the simulator's features after alignment
and projection, G). ``forward`` returns ``(fused (..., L, D), gate_mean (...,))`` where
``gate_mean`` is the mean weight given to the semantic stream per sample, for logging.
"""

from __future__ import annotations

import torch
from torch import nn

from vega3d.errors import Vega3DError

#: ``gate_mean`` reported by variants without a learned gate ("add", "concat",
#: "cross_attention"): the semantic share of an unweighted blend. Such modules have
#: ``has_gate = False`` so loggers can tell this constant from a measured gate.
NO_GATE = 0.5


def stream_problem(name: str, semantic: torch.Tensor, generative: torch.Tensor, hidden_size: int) -> str | None:
    """What is wrong with two streams for a fusion of width ``hidden_size`` (None: nothing):
    both must be ``(..., L, hidden_size)``, of one shape and one dtype."""
    if semantic.ndim < 2:
        return f"{name}: semantic must be (..., L, D), got shape {tuple(semantic.shape)}"
    if semantic.shape != generative.shape:
        return (
            f"{name}: semantic and generative must have the same shape (..., L, D), "
            f"got semantic {tuple(semantic.shape)} and generative {tuple(generative.shape)}"
        )
    if semantic.shape[-1] != hidden_size:
        return f"{name}: last dimension must be hidden_size={hidden_size}, got shape {tuple(semantic.shape)}"
    if semantic.dtype != generative.dtype:
        return f"{name}: semantic and generative must share a dtype, got {semantic.dtype} and {generative.dtype}"
    return None


class Fusion(nn.Module):
    """Base class: asserts the stream contract (:func:`stream_problem`), then calls ``fuse``.

    The streams are checked where they are made (the caller's edge: e.g.
    :class:`vega3d.mllm.Vega3DQwen` checks the feature grids it is given), so ``forward``
    only asserts the contract — it runs on every training step.

    ``forward(semantic, generative, *, grid_hw=None, grid_thw=None, positions=None)``.
    The geometry keywords describe where the L tokens sit (see
    :class:`vega3d.fusion.cross_attention.CrossAttentionFusion`); variants that do not
    use positions accept and ignore them, so callers can pass them uniformly.
    """

    has_gate = True

    def __init__(self, hidden_size: int):
        super().__init__()
        if int(hidden_size) <= 0:
            raise Vega3DError(f"{type(self).__name__}: hidden_size must be positive, got {hidden_size}")
        self.hidden_size = int(hidden_size)

    def forward(self, semantic, generative, *, grid_hw=None, grid_thw=None, positions=None):
        assert (problem := stream_problem(type(self).__name__, semantic, generative, self.hidden_size)) is None, problem
        return self.fuse(semantic, generative, grid_hw=grid_hw, grid_thw=grid_thw, positions=positions)

    def fuse(self, semantic, generative, **geometry):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def constant_gate(semantic: torch.Tensor, value: float) -> torch.Tensor:
        """``value`` as a float32 tensor of the per-sample shape ``semantic.shape[:-2]``."""
        return torch.full(semantic.shape[:-2], float(value), dtype=torch.float32, device=semantic.device)
