"""Cross-attention fusion: semantic queries attend to generative keys/values with 2-D positions.

One block, as in the released code: ``x = S + MHA(LN(S) + P, LN(G) + P, LN(G))`` then
``x = x + MLP(LN(x))`` (MLP D -> 4D -> D, GELU), where P is a fixed 2-D sine-cosine
encoding of each token's (row, col) on its frame's token grid (half the channels encode
the row, half the column; 10000^(-k/(D/4)) frequencies, as MAE's ``get_2d_sincos_pos_embed``).
Without P, attention is blind to where a generative token sits; with it, a semantic token
can prefer the generative tokens covering the same pixels.

Where the tokens sit must be given (the released code guessed a square grid from L):

- ``grid_hw=(h, w)``: L == h*w tokens in row-major order; attention over all of them.
- ``grid_thw=(t, h, w)``: L == t*h*w, t frames (Qwen temporal patches) of h x w tokens in
  (t, row, col) order; each frame attends within itself (as the released per-frame batch).
  For Qwen2.5-VL this is the *merged-token* grid (T, Hp/2, Wp/2), not the processor's
  patch-level ``grid_thw`` (which counts 4x as many and is rejected as a mismatch).
- ``positions``: (L, 2) float (row, col) of every token; attention over all L.

Dropout defaults to 0 (released: 0.1) so training runs are reproducible from the seed alone.
"""

from __future__ import annotations

import torch
from torch import nn

from vega3d.errors import Vega3DError
from vega3d.fusion.base import NO_GATE, Fusion


def sincos_2d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sine-cosine encoding of (row, col) ``positions`` (L, 2) -> (L, dim) float32; dim % 4 == 0."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32, device=positions.device) / quarter)
    parts = []
    for axis in (0, 1):
        angle = positions[:, axis, None].float() * omega
        parts += [angle.sin(), angle.cos()]
    return torch.cat(parts, dim=-1)


def grid_positions(h: int, w: int, device=None) -> torch.Tensor:
    """(row, col) of an h x w grid in row-major order: (h*w, 2) float32."""
    rows, cols = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack([rows.flatten(), cols.flatten()], dim=-1).float()


class CrossAttentionFusion(Fusion):
    """Semantic tokens query the generative tokens; ``gate_mean`` is the constant ``NO_GATE``."""

    has_gate = False

    def __init__(self, hidden_size: int, *, num_heads: int = 8, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__(hidden_size)
        d = self.hidden_size
        if d % 4 != 0 or d % num_heads != 0:
            raise Vega3DError(
                f"CrossAttentionFusion: hidden_size must be divisible by 4 and by num_heads={num_heads}, got {d}"
            )
        self.norm_query = nn.LayerNorm(d)
        self.norm_key = nn.LayerNorm(d)
        self.norm_value = nn.LayerNorm(d)
        self.norm_mlp = nn.LayerNorm(d)
        self.attention = nn.MultiheadAttention(d, num_heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(
            nn.Linear(d, mlp_ratio * d),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_ratio * d, d),
            nn.Dropout(dropout),
        )

    def _layout(self, length: int, device, grid_hw, grid_thw, positions):
        """Returns (frames t, per-frame positions (L/t, 2)); the geometry is asserted (the
        caller knows where its tokens sit)."""
        given = [
            k for k, v in (("grid_hw", grid_hw), ("grid_thw", grid_thw), ("positions", positions)) if v is not None
        ]
        assert len(given) == 1, (
            f"CrossAttentionFusion: pass exactly one of grid_hw, grid_thw, positions (got {given or 'none'}); "
            "the 2-D position encoding needs to know where the tokens sit"
        )
        if positions is not None:
            positions = torch.as_tensor(positions, device=device)
            assert tuple(positions.shape) == (length, 2), (
                f"CrossAttentionFusion: positions must be (L, 2) = ({length}, 2), got {tuple(positions.shape)}"
            )
            return 1, positions.float()
        t, h, w = (int(v) for v in ((1, *grid_hw) if grid_hw is not None else grid_thw))
        assert t * h * w == length, (
            f"CrossAttentionFusion: {given[0]}={(h, w) if grid_hw is not None else (t, h, w)} "
            f"describes {t * h * w} tokens but the streams have L={length}"
        )
        return t, grid_positions(h, w, device)

    def fuse(self, semantic, generative, *, grid_hw=None, grid_thw=None, positions=None):
        length, d = semantic.shape[-2:]
        t, pos = self._layout(length, semantic.device, grid_hw, grid_thw, positions)
        s = semantic.reshape(-1, length // t, d)
        g = generative.reshape(-1, length // t, d)
        p = sincos_2d(pos, d).to(semantic.dtype)
        value = self.norm_value(g)
        attended, _ = self.attention(self.norm_query(s) + p, self.norm_key(g) + p, value, need_weights=False)
        x = s + attended
        x = x + self.mlp(self.norm_mlp(x))
        return x.reshape(semantic.shape), self.constant_gate(semantic, NO_GATE)
