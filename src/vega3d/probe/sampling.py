"""Reading feature grids at continuous pixel positions, and the AUROC with ties."""

from __future__ import annotations

import torch


def bilinear_sample(features: torch.Tensor, frame: torch.Tensor, xy: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly interpolate grids at colour-pixel positions.

    ``features`` (N, h, w, C) covers the full ``image_size`` (H, W) frame (vega3d.grids):
    cell (i, j) has its centre at pixel ``((j + 0.5) W / w, (i + 0.5) H / h)``. ``frame``
    (P,) long picks the grid, ``xy`` (P, 2) gives pixel coordinates ``(x, y)``. Positions
    between the outermost cell centres and the frame border take the border cell's value
    (``align_corners=False`` with border padding, as ``resample_grid``). Returns (P, C)
    in the grid's dtype.
    """
    n, h, w, c = features.shape
    height, width = image_size
    gx = (xy[:, 0] * (w / width) - 0.5).clamp(0, w - 1)
    gy = (xy[:, 1] * (h / height) - 0.5).clamp(0, h - 1)
    x0 = gx.floor().long().clamp(0, w - 1)
    y0 = gy.floor().long().clamp(0, h - 1)
    x1 = (x0 + 1).clamp(max=w - 1)
    y1 = (y0 + 1).clamp(max=h - 1)
    fx = (gx - x0).to(features.dtype).unsqueeze(-1)
    fy = (gy - y0).to(features.dtype).unsqueeze(-1)
    flat = features.reshape(n * h * w, c)
    base = frame * (h * w)
    f00 = flat[base + y0 * w + x0]
    f01 = flat[base + y0 * w + x1]
    f10 = flat[base + y1 * w + x0]
    f11 = flat[base + y1 * w + x1]
    return (f00 * (1 - fx) + f01 * fx) * (1 - fy) + (f10 * (1 - fx) + f11 * fx) * fy


def normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """L2-normalise the last dimension; an all-zero vector stays zero (cosine 0)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def auroc(positives: torch.Tensor, negatives: torch.Tensor, tie_tolerance: float = 1e-6) -> float:
    """Area under the ROC curve of ``positives`` vs ``negatives`` scores (1-D).

    The probability that a random positive scores above a random negative, counting
    pairs whose scores differ by at most ``tie_tolerance`` as ties (half a win): float32
    cosines of identical vectors differ by rounding, and a constant feature map must get
    exactly 0.5. Exact (all pairs, via sorting), in float64. NaN if either set is empty.
    """
    if positives.numel() == 0 or negatives.numel() == 0:
        return float("nan")
    pos = positives.detach().reshape(-1).double()
    neg = torch.sort(negatives.detach().reshape(-1).double()).values
    below = torch.searchsorted(neg, pos - tie_tolerance, right=False)
    upto = torch.searchsorted(neg, pos + tie_tolerance, right=True)
    wins = below.double().sum()
    ties = (upto - below).double().sum()
    return float((wins + 0.5 * ties) / (pos.numel() * neg.numel()))
