"""The generative branch of the policy: Wan features fused into OpenVLA-OFT's projected patch tokens.

**This design is vega3d's.** VEGA-3D reports OpenVLA-OFT + a Wan prior on LIBERO, but its
policy code was never released; nothing here reproduces unpublished code.

Per camera in ``branch_cameras`` (default: the third-person image only):

1. Z — the Wan2.1 feature grid (h, w, C) of **exactly the image the policy sees** (the 224²
   resize + centre crop, or the training crop): the simulator resizes that whole image
   (256² gives Wan's 16 x 16 token grid, one token per 16 px), so every Wan cell covers the same
   pixels as the patch cell at its index; other sizes are resampled onto the 16 x 16 grid
   (:func:`vega3d.fusion.align_to_grid`). Cell (i, j) of both grids covers the same fraction of
   the image (the full-frame convention of :mod:`vega3d.grids`).
2. G = W·Z — a projector (``mlp2x_gelu``) to the LLM width.
3. P' = P + g ⊙ (F(P, G) − P) — P the camera's 256 projected patch tokens, F any
   :data:`vega3d.fusion.FUSIONS` variant, and g a **per-token gate**
   g = tanh(Linear([LN(P) ‖ LN(G)])) whose Linear starts at exactly zero (weight and bias).

At initialisation g = 0, so P' = P bit for bit and the policy's actions are exactly the base
policy's (tested for every variant). On its own no variant is an identity at initialisation
(gated / channel_gated: a 0.5 mix of LN(P) and LN(G); residual_gated: P + 0.1·(G − P);
add: P + G; concat: a random Linear; weighted_sum: 0.5 P + 0.5 G; cross_attention: P plus an
attention and an MLP update); the outer zero-initialised gate makes every variant one.
With ``fusion: add`` the branch is P + g ⊙ W·Z, the gated residual the reference suggests.
At step 0 only the gate's Linear receives gradient (the residual F(P, G) − P is non-zero, g is
0); once g moves, the projector and the fusion train too — the same warm start as Flamingo's
tanh gates, but per token.
"""

from __future__ import annotations

import torch
from torch import nn

from vega3d.fusion import align_to_grid, build_fusion, build_projector


class GenerativeBranch(nn.Module):
    """``forward(tokens (B, n·L, D), features (B, m, h, w, C), slots) -> (tokens', gate_mean (B,))``:
    the m feature grids go to the image slots ``slots`` (indices among the n images)."""

    def __init__(self, generative_dim: int, llm_dim: int, grid: int, *, fusion: str = "add",
                 fusion_kwargs: dict | None = None, projector: str = "mlp2x_gelu"):  # fmt: skip
        super().__init__()
        self.grid = int(grid)
        self.projector = build_projector(projector, generative_dim, llm_dim)
        self.fusion = build_fusion(fusion, llm_dim, **(fusion_kwargs or {}))
        self.norm_tokens = nn.LayerNorm(llm_dim)
        self.norm_generative = nn.LayerNorm(llm_dim)
        self.gate = nn.Linear(2 * llm_dim, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def fuse(self, patches: torch.Tensor, grids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``patches`` (N, L, D) of N images, ``grids`` (N, h, w, C) -> (patches', gate (N, L, 1))."""
        aligned = align_to_grid(grids.float(), (self.grid, self.grid))  # (N, L, C)
        width = next(self.projector.parameters()).dtype
        generative = self.projector(aligned.to(width))
        fusion_dtype = next(self.fusion.parameters(), generative).dtype
        p, g = patches.to(fusion_dtype), generative.to(fusion_dtype)
        fused, _ = self.fusion(p, g, grid_hw=(self.grid, self.grid))
        gate = torch.tanh(self.gate(torch.cat([self.norm_tokens(p), self.norm_generative(g)], dim=-1)))
        return (p + gate * (fused - p)).to(patches.dtype), gate

    def forward(self, tokens: torch.Tensor, features: torch.Tensor, slots: list[int]):
        b, n_tokens, d = tokens.shape
        length = self.grid * self.grid
        assert features.shape[:2] == (b, len(slots)) and n_tokens % length == 0, (features.shape, tokens.shape, slots)
        images = tokens.reshape(b, n_tokens // length, length, d)
        chosen = images[:, slots].reshape(b * len(slots), length, d)
        fused, gate = self.fuse(chosen, features.reshape(b * len(slots), *features.shape[2:]))
        images = images.clone()
        images[:, slots] = fused.reshape(b, len(slots), length, d)
        return images.reshape(b, n_tokens, d), gate.float().reshape(b, -1).mean(dim=1)
