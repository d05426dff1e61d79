"""The released spatial-reasoning projector: a 2 x 2 patch merger with an MLP ("merger_mlp").

VEGA-3D's spatial-reasoning release (``GeometryFeatureMerger``, ``generative_merger_type
"mlp"`` in ``src/qwen_vl/model/feature_fusion.py`` of the ``spatial-reasoning`` branch) does
not project one generative cell per LLM token. It resamples the generative grid onto Qwen's
14-px *patch* grid (Hp, Wp) and merges every m x m window of patches into one token, the way
Qwen2.5-VL's own ``PatchMerger`` merges its ViT patches:

    window (m, m, C) ─ RMSNorm over C, per patch (eps 1e-6) ─ concatenate in (row, col) order (m²·C)
      ─ Linear(m²·C → hidden) ─ GELU (exact) ─ Linear(hidden → D)

With Wan2.1-1.3B (C = 1536) and Qwen2.5-VL-7B (D = 3584): 6144 → 4096 → 3584. The released
code first crops the patch grid to even sizes; Qwen's processor always gives even Hp, Wp, so
that crop never removes anything.

:class:`WindowMergerMLP` takes the windows already concatenated, ``(..., m²·C)``, which
:func:`vega3d.fusion.align.align_to_qwen_tokens` returns with ``keep_merge_window=True``; its
``merge_window`` attribute (m) tells the caller to ask for them. Its sub-modules carry the
released names (``ln_q``, ``mlp.0``, ``mlp.2``), so the released ``generative_merger.*``
tensors load into it with the prefix changed and nothing else.

Initialisation: ``init_std=0.02`` (default) draws both Linear weights from N(0, 0.02²) and
zeroes their biases — what the release's training run started from (transformers'
``_init_weights`` initialised the merger, whose keys the base checkpoint lacks); the RMSNorm
scale starts at 1. ``init_std=None`` keeps PyTorch's default Linear init. The draw uses the
global RNG (:class:`vega3d.mllm.Vega3DQwen` seeds it in a forked RNG).
"""

from __future__ import annotations

import torch
from torch import nn

from vega3d.errors import Vega3DError

#: The released merger's hidden width (``generative_merger_hidden_dim``'s default).
RELEASE_HIDDEN = 4096


class WindowMergerMLP(nn.Module):
    """``(..., m²·C)`` windows of m x m patches → ``(..., D)``. See the module docstring."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        hidden: int = RELEASE_HIDDEN,
        merge_size: int = 2,
        eps: float = 1e-6,
        init_std: float | None = 0.02,
    ):
        super().__init__()
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLRMSNorm

        sizes = {"in_dim": in_dim, "out_dim": out_dim, "hidden": hidden, "merge_size": merge_size}
        bad = {k: v for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
        if bad or (init_std is not None and not init_std > 0) or not eps > 0:
            raise Vega3DError(
                f"merger_mlp: expected positive integer widths and merge_size, eps > 0 and init_std > 0 or None; "
                f"got {sizes | {'eps': eps, 'init_std': init_std}}"
            )
        self.in_dim, self.merge_window = in_dim, merge_size
        self.ln_q = Qwen2_5_VLRMSNorm(in_dim, eps=eps)  # the release's Qwen2RMSNorm: same formula
        self.mlp = nn.Sequential(nn.Linear(merge_size**2 * in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
        if init_std is not None:
            for layer in (self.mlp[0], self.mlp[2]):
                nn.init.normal_(layer.weight, std=float(init_std))
                nn.init.zeros_(layer.bias)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """``windows`` (..., m²·C), each token's m x m patches in (row, col) order → (..., D)."""
        m2 = self.merge_window**2
        assert windows.shape[-1] == m2 * self.in_dim, (tuple(windows.shape), m2, self.in_dim)
        patches = self.ln_q(windows.unflatten(-1, (m2, self.in_dim)))  # RMSNorm per patch, over C
        return self.mlp(patches.flatten(-2))
