"""Feature grids and the pixels they cover.

A feature grid is channel-last, ``(N, h, w, C)``. For a frame of ``H x W`` pixels, cell
``(i, j)`` covers the pixel rectangle ``[j*W/w, (j+1)*W/w) x [i*H/h, (i+1)*H/h)`` of the
**full** frame (no crop), so its centre is at pixel coordinates
``((j + 0.5) * W / w, (i + 0.5) * H / h)`` with pixel centres at +0.5 (DESIGN.md).

Because every grid covers the same full frame, two grids of one frame describe the same
pixels whatever their resolutions, and :func:`resample_grid` moves features from one onto
the other. This is how the generative grid (one cell per 16x16 pixels of the simulator's
input) is registered against a semantic token grid (e.g. 14x14 or 28x28 patches).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vega3d.errors import Vega3DError


def cell_centers(h: int, w: int, height: float, width: float) -> torch.Tensor:
    """Pixel coordinates of the cell centres of an ``h x w`` grid over a ``height x width`` frame.

    Returns (h, w, 2) float32 ``(x, y)`` in pixels (pixel centres at +0.5).
    """
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) * (height / h)
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * (width / w)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)


def pixel_to_cell(xy: torch.Tensor, h: int, w: int, height: float, width: float) -> torch.Tensor:
    """Continuous grid coordinates ``(col, row)`` of pixel positions ``xy`` (..., 2).

    Integer parts index the cell a pixel falls in; cell centres sit at ``k + 0.5``.
    """
    scale = torch.tensor([w / width, h / height], dtype=xy.dtype, device=xy.device)
    return xy * scale


def resample_grid(features: torch.Tensor, size: tuple[int, int], *, antialias: bool = True) -> torch.Tensor:
    """Resample ``features`` (N, h, w, C) onto an ``(h2, w2)`` grid covering the same pixels.

    Bilinear at cell centres (``align_corners=False`` is exactly the full-frame cell
    convention above). Downsampling by whole factors averages exactly the source cells
    each target cell covers; other downsampling uses antialiased bilinear (with
    ``antialias``) so every source cell contributes. Identity when the sizes agree.
    Returns (N, h2, w2, C) in the input dtype.
    """
    h2, w2 = int(size[0]), int(size[1])
    if features.ndim != 4 or h2 <= 0 or w2 <= 0:
        raise Vega3DError(
            f"resample_grid: features must be (N, h, w, C) and the target size (h2, w2) positive, "
            f"got shape {tuple(features.shape)} and size {tuple(size)}"
        )
    if tuple(features.shape[1:3]) == (h2, w2):
        return features
    x = features.permute(0, 3, 1, 2)
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    h, w = x.shape[2], x.shape[3]
    if h2 <= h and w2 <= w and h % h2 == 0 and w % w2 == 0:
        out = F.avg_pool2d(work, kernel_size=(h // h2, w // w2))
    else:
        down = h2 < h or w2 < w
        out = F.interpolate(work, size=(h2, w2), mode="bilinear", align_corners=False, antialias=antialias and down)
    return out.to(features.dtype).permute(0, 2, 3, 1).contiguous()
