"""What every encoder shares: the input check, the output contract, resizing.

An encoder is any object with ``name`` (str), ``config`` (JSON-serialisable dict) and
``__call__(frames) -> grid`` where ``frames`` is (N, 3, H, W) float in [0, 1] and
``grid`` is (N, h, w, C) float32 on the CPU, cell (i, j) covering pixels
``[j W/w, (j+1) W/w) x [i H/h, (i+1) H/h)`` of the whole frame (vega3d.grids).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vega3d.errors import Vega3DError


class Encoder:
    """Base of the encoders: ``encoder(frames)`` checks the frames once (:func:`check_frames`, the
    edge of every encoder) and returns ``_encode`` of them: the grid."""

    name = "encoder"

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        return self._encode(check_frames(frames, f"{self.name} encoder"))

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """The (N, h, w, C) float32 grid of checked frames ``x`` (N, 3, H, W) float32 in [0, 1]."""
        raise NotImplementedError


def check_frames(frames, where: str) -> torch.Tensor:
    """Validate (N, 3, H, W) float frames in [0, 1]; return them as float32."""
    shaped = isinstance(frames, torch.Tensor) and frames.ndim == 4 and frames.shape[1] == 3 and frames.shape[0] >= 1
    if not (shaped and frames.is_floating_point() and bool(torch.isfinite(frames).all())) or not (
        0 <= frames.min() <= frames.max() <= 1
    ):
        got = type(frames).__name__
        if isinstance(frames, torch.Tensor):
            got = f"{frames.dtype} {tuple(frames.shape)}" + (
                f" in [{frames.min().item()}, {frames.max().item()}]" if shaped else ""
            )
        raise Vega3DError(
            f"{where}: frames must be a torch tensor (N, 3, H, W), N >= 1, of finite float in [0, 1] "
            f"(use Scene.frames()), got {got}"
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
