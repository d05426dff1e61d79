"""What every encoder shares: input checks and the output contract.

An encoder is any object with ``name`` (str), ``config`` (JSON-serialisable dict) and
``__call__(frames) -> grid`` where ``frames`` is (N, 3, H, W) float in [0, 1] and
``grid`` is (N, h, w, C) float32 on the CPU, cell (i, j) covering pixels
``[j W/w, (j+1) W/w) x [i H/h, (i+1) H/h)`` of the whole frame (vega3d.grids).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vega3d.errors import Vega3DError


def check_frames(frames, where: str) -> torch.Tensor:
    """Validate (N, 3, H, W) float frames in [0, 1]; return them as float32."""
    is_tensor = isinstance(frames, torch.Tensor)
    if not (is_tensor and frames.ndim == 4 and frames.shape[1] == 3 and frames.shape[0] >= 1):
        got = f"shape {tuple(frames.shape)}" if is_tensor else type(frames).__name__
        raise Vega3DError(f"{where}: frames must be a torch tensor (N, 3, H, W) with N >= 1, got {got}")
    if (
        not frames.is_floating_point()
        or not bool(torch.isfinite(frames).all())
        or not 0 <= frames.min() <= frames.max() <= 1
    ):
        raise Vega3DError(
            f"{where}: frames must be finite float in [0, 1] (use Scene.frames()), got {frames.dtype} "
            f"in [{frames.min().item()}, {frames.max().item()}]"
        )
    return frames.float()


def grid_for_stride(height: int, width: int, stride: float) -> tuple[int, int]:
    """(h, w) of a grid with cells of about ``stride`` pixels over a ``height x width`` frame."""
    return max(1, round(height / stride)), max(1, round(width / stride))


def resize_whole(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (N, 3, H, W) to ``size`` = (h, w) keeping the whole frame (no crop; aspect may change)."""
    if tuple(frames.shape[2:]) == tuple(size):
        return frames
    down = size[0] < frames.shape[2] or size[1] < frames.shape[3]
    return F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=down).clamp_(0.0, 1.0)
