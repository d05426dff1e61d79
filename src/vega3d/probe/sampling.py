"""Reading feature grids at continuous pixel positions, and the AUROC with ties."""

from __future__ import annotations

import torch


def _corners(shape, frame: torch.Tensor, xy: torch.Tensor, image_size: tuple[int, int]):
    """Flat indices (P, 4) of the 4 cells around each position and their bilinear weights (P, 4).

    Cell centres sit at pixel ``((j + 0.5) W / w, (i + 0.5) H / h)`` (vega3d.grids);
    positions between the outermost centres and the frame border take the border cell
    (``align_corners=False`` with border padding, as ``resample_grid``).
    """
    _, h, w, _ = shape
    height, width = image_size
    gx = (xy[:, 0] * (w / width) - 0.5).clamp(0, w - 1)
    gy = (xy[:, 1] * (h / height) - 0.5).clamp(0, h - 1)
    x0 = gx.floor().long().clamp(0, w - 1)
    y0 = gy.floor().long().clamp(0, h - 1)
    x1 = (x0 + 1).clamp(max=w - 1)
    y1 = (y0 + 1).clamp(max=h - 1)
    fx = (gx - x0).float()
    fy = (gy - y0).float()
    base = frame * (h * w)
    idx = torch.stack([base + y0 * w + x0, base + y0 * w + x1, base + y1 * w + x0, base + y1 * w + x1], dim=1)
    wts = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dim=1)
    return idx, wts


def bilinear_sample(
    features: torch.Tensor, frame: torch.Tensor, xy: torch.Tensor, image_size: tuple[int, int]
) -> torch.Tensor:
    """Bilinearly interpolate grids at colour-pixel positions.

    ``features`` (N, h, w, C) covers the full ``image_size`` (H, W) frame; ``frame`` (P,)
    long picks the grid, ``xy`` (P, 2) gives pixel coordinates ``(x, y)``. Returns (P, C)
    float32.
    """
    idx, wts = _corners(features.shape, frame, xy, image_size)
    corners = features.reshape(-1, features.shape[-1]).float()[idx]  # (P, 4, C)
    return torch.bmm(wts.unsqueeze(1), corners).squeeze(1)


def bilinear_cosine(
    features: torch.Tensor, frame: torch.Tensor, xy: torch.Tensor, image_size: tuple[int, int], queries: torch.Tensor
) -> torch.Tensor:
    """Cosine (P,) between unit ``queries`` (P, C) and the bilinearly interpolated features.

    Equal to ``(queries * normalize(bilinear_sample(...))).sum(-1)`` without building the
    interpolated vectors: with corner features ``F`` (4, C) and weights ``a`` (4,), the
    numerator is ``a . (F q)`` and the squared norm ``a^T (F F^T) a``.
    """
    idx, wts = _corners(features.shape, frame, xy, image_size)
    corners = features.reshape(-1, features.shape[-1]).float()[idx]  # (P, 4, C)
    dots = torch.bmm(corners, queries.float().unsqueeze(-1)).squeeze(-1)  # (P, 4)
    gram = torch.bmm(corners, corners.transpose(1, 2))  # (P, 4, 4)
    sq = torch.einsum("pi,pij,pj->p", wts, gram, wts).clamp_min(1e-24)
    return (wts * dots).sum(-1) / sq.sqrt()


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
