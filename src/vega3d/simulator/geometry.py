"""Frames → simulator input, and which pixels each feature cell covers.

The simulator runs at a fixed ``height x width`` (multiples of 16: the VAE downsamples by
8 and the DiT patchifies 2x2 latents, so one DiT token = one 16x16 block of input pixels).
Frames of any size are brought to that size keeping the **whole** frame — never cropped:

* ``pad=False`` (default): bilinear (antialiased) resize of the full frame to
  ``height x width``; the aspect ratio changes if it differs. Token ``(i, j)`` sees input
  pixels ``[16j, 16j+16) x [16i, 16i+16)``, i.e. the frame rectangle
  ``[j*W/w, (j+1)*W/w) x [i*H/h, (i+1)*H/h)`` with ``h, w = height//16, width//16`` — exactly
  the full-frame grid convention of DESIGN.md / :mod:`vega3d.grids`.
* ``pad=True``: aspect-preserving. The frame is resized (uniform scale, up to rounding to
  whole tokens) into a *content box* whose size is a multiple of 16 px, and the box is placed
  on a black canvas (value 0 in [0, 1], -1 for the VAE) with the padding split between
  both sides in whole tokens. Because the box edges fall on token boundaries, the tokens
  inside the box cover the frame exactly: content token ``(i, j)`` of the ``hc x wc``
  box grid covers frame rectangle ``[j*W/wc, (j+1)*W/wc) x [i*H/hc, (i+1)*H/hc)``. The
  simulator crops the token grid to the box and resamples it with
  :func:`vega3d.grids.resample_grid` onto the ``h x w`` grid, so the returned grid follows
  the same full-frame convention as in resize mode (cell ``(i, j)`` covers
  ``[j*W/w, (j+1)*W/w) x [i*H/h, (i+1)*H/h)``); along the padded axis it has been
  bilinearly upsampled from ``hc`` (or ``wc``) cells. The scale differs between the axes
  by at most 8 px / box size (the rounding to whole tokens).

Pixel centres sit at +0.5 (DESIGN.md); :func:`vega3d.grids.cell_centers` gives the cell
centres in frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from vega3d.config import Int
from vega3d.simulator.checks import Options, check, no_nan, tensor_found

#: One DiT token covers this many input pixels along each axis (VAE stride 8 x patch 2).
TOKEN_PX = 16


@dataclass(frozen=True)
class ContentBox:
    """Where the frame sits in the simulator input, in whole tokens.

    ``top, left``: first token row/column of the frame; ``rows, cols``: tokens it spans.
    In resize mode the box is the whole token grid.
    """

    top: int
    left: int
    rows: int
    cols: int

    def crop(self, grid: torch.Tensor) -> torch.Tensor:
        """The box's cells of a token grid (N, h, w, C) → (N, rows, cols, C)."""
        return grid[:, self.top : self.top + self.rows, self.left : self.left + self.cols]


#: A simulator input side in pixels: a positive multiple of :data:`TOKEN_PX`.
Side = Annotated[
    Int, Field(ge=TOKEN_PX, multiple_of=TOKEN_PX, description="a positive multiple of 16 (VAE stride 8 x DiT patch 2)")
]


class Size(Options):
    """The simulator's input size (:func:`check_size`)."""

    height: Side  # input rows
    width: Side  # input columns


def check_size(height: int, width: int) -> None:
    """Simulator input size: positive multiples of 16 (one DiT token = 16x16 px)."""
    Size(height=height, width=width)


def as_float_frames(frames, where: str = "frames") -> torch.Tensor:
    """Validate frames and return (N, 3, H, W) float32 in [0, 1] (CPU or the input's device).

    Accepts float (N, 3, H, W) in [0, 1] or uint8 (N, H, W, 3) (torch tensor or numpy array).
    """
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    ok = isinstance(frames, torch.Tensor) and frames.ndim == 4 and frames.numel() > 0
    uint8 = ok and frames.dtype == torch.uint8
    ok = ok and ((uint8 and frames.shape[3] == 3) or (frames.is_floating_point() and frames.shape[1] == 3))
    kinds = "(N, 3, H, W) float in [0, 1] (3 channels first) or (N, H, W, 3) uint8 (3 channels last)"
    check(ok, where, tensor_found(frames), f"4 dims, {kinds}, not empty: a torch tensor or numpy array")
    if uint8:
        return frames.permute(0, 3, 1, 2).float() / 255.0
    frames = frames.float()
    finite = no_nan(frames)
    lo, hi = (float(frames.min()), float(frames.max())) if finite else (None, None)
    found = f"values in [{lo:.4g}, {hi:.4g}]" if finite else tensor_found(frames, finite)
    ok = finite and lo >= 0.0 and hi <= 1.0
    check(ok, where, found, "finite float frames in [0, 1] (uint8 frames may be passed as (N, H, W, 3))")
    return frames


def content_box(frame_hw: tuple[int, int], height: int, width: int, pad: bool) -> ContentBox:
    """The token box that a ``frame_hw = (H, W)`` frame occupies in a ``height x width`` input."""
    h, w = height // TOKEN_PX, width // TOKEN_PX
    if not pad:
        return ContentBox(0, 0, h, w)
    fh, fw = frame_hw
    if fw * height >= fh * width:  # frame at least as wide as the target: pad top/bottom
        rows = min(h, max(1, round(fh * width / fw / TOKEN_PX)))
        top = (h - rows) // 2
        return ContentBox(top, 0, rows, w)
    cols = min(w, max(1, round(fw * height / fh / TOKEN_PX)))
    left = (w - cols) // 2
    return ContentBox(0, left, h, cols)


def fit_frames(frames: torch.Tensor, height: int, width: int, pad: bool = False) -> tuple[torch.Tensor, ContentBox]:
    """Bring (N, 3, H, W) float [0, 1] frames to (N, 3, height, width), whole frame kept.

    Returns the fitted frames (still in [0, 1]) and the :class:`ContentBox` they occupy.
    """
    box = content_box((frames.shape[2], frames.shape[3]), height, width, pad)
    size = (box.rows * TOKEN_PX, box.cols * TOKEN_PX)
    if tuple(frames.shape[2:]) != size:
        frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0.0, 1.0)
    if pad and (box.rows * TOKEN_PX != height or box.cols * TOKEN_PX != width):
        top, left = box.top * TOKEN_PX, box.left * TOKEN_PX
        bottom = height - top - size[0]
        right = width - left - size[1]
        frames = F.pad(frames, (left, right, top, bottom), value=0.0)
    return frames, box
