"""The paper-compatible Multi-view Correspondence Score (VEGA-3D, Sec. 3 / Fig. 3b).

The released code for this score is missing; this reconstructs the paper's description.
Choices (docs/probe.md):

1. Cell world positions: every depth pixel is mapped to the colour pixel it sees (the
   homography ``K_color inv(K_depth)``, same optical centre) and so to a feature cell.
   A cell's position is the mean world point of its *valid* depth pixels (depth > 0);
   invalid pixels never enter the mean. A cell is dropped when fewer than
   ``min_valid_fraction`` of the depth pixels that land in it are valid, or none land in it.
2. Voxels: ``floor(world / voxel_size)`` in the scene's world frame (the poses' frame;
   ``axis_align`` is not applied — it only shifts which cells share a voxel).
3. Per frame and voxel, the features of its cells are L2-normalised, averaged and
   re-normalised.
4. For each pair of adjacent frames (consecutive in the given order, among frames with a
   valid pose), the cosine of the two voxel features, for every voxel seen in both; the
   mean over those voxels, then the mean over pairs (pairs sharing no voxel are skipped
   and counted out). The paper reports this x100.
"""

from __future__ import annotations

import torch

from vega3d.probe.geometry import apply_homography, pixel_grid, transform, unproject
from vega3d.probe.sampling import normalize


def cell_world_positions(scene, grid_size, frames, min_valid_fraction: float):
    """Mean world position of each feature cell, from valid depth only.

    Returns ``(positions (F, h*w, 3) float64, keep (F, h*w) bool)`` for the scene
    positions ``frames`` (F,).
    """
    h, w = grid_size
    height, width = scene.image_size
    hd, wd = scene.depth_size
    xy_d = pixel_grid(hd, wd)
    xy_c = apply_homography(scene.intrinsics_color.double() @ torch.linalg.inv(scene.intrinsics_depth.double()), xy_d)
    inside = (xy_c[:, 0] >= 0) & (xy_c[:, 0] < width) & (xy_c[:, 1] >= 0) & (xy_c[:, 1] < height)
    cx = torch.floor(xy_c[:, 0] * (w / width)).long().clamp(0, w - 1)
    cy = torch.floor(xy_c[:, 1] * (h / height)).long().clamp(0, h - 1)
    cell = cy * w + cx
    total = torch.bincount(cell[inside], minlength=h * w).double()
    rays = unproject(xy_d, torch.ones(len(xy_d), dtype=torch.float64), scene.intrinsics_depth.double())
    positions = torch.zeros(len(frames), h * w, 3, dtype=torch.float64)
    keep = torch.zeros(len(frames), h * w, dtype=torch.bool)
    for k, f in enumerate(frames):
        d = scene.depth[f].reshape(-1).double()
        valid = inside & (d > 0)
        world = transform(scene.poses[f].double(), rays[valid] * d[valid].unsqueeze(-1))
        sums = torch.zeros(h * w, 3, dtype=torch.float64).index_add_(0, cell[valid], world)
        count = torch.bincount(cell[valid], minlength=h * w).double()
        keep[k] = (total > 0) & (count > 0) & (count >= min_valid_fraction * total)
        positions[k] = sums / count.clamp_min(1).unsqueeze(-1)
    return positions, keep


def paper_score(
    scene, features: torch.Tensor, frames: list[int], voxel_size: float = 0.1, min_valid_fraction: float = 0.1
) -> dict:
    """The paper-compatible score over adjacent pairs of ``frames`` (scene positions).

    ``features`` (N, h, w, C) for all scene frames. Returns a dict with ``score`` (NaN if
    no adjacent pair shares a voxel), ``num_pairs`` (pairs that shared at least one
    voxel), ``voxels_per_pair`` (mean shared voxels), ``per_pair`` (list of dicts) and
    ``reason`` (why the score is NaN; None when it is not).
    """
    n, h, w, c = features.shape
    positions, keep = cell_world_positions(scene, (h, w), frames, min_valid_fraction)
    per_frame = voxel_features(features[frames].reshape(len(frames), h * w, c), positions, keep, voxel_size)
    per_pair, scores = [], []
    for k in range(len(frames) - 1):
        (ka, fa), (kb, fb) = per_frame[k], per_frame[k + 1]
        common, ia, ib = _intersect(ka, kb)
        s = float((fa[ia] * fb[ib]).sum(-1).mean()) if len(common) else None
        if s is not None:
            scores.append((s, len(common)))
        per_pair.append({"frames": [frames[k], frames[k + 1]], "voxels": int(len(common)), "score": s})
    if not scores:
        return {
            "score": float("nan"),
            "num_pairs": 0,
            "voxels_per_pair": float("nan"),
            "per_pair": per_pair,
            "reason": _no_score_reason(keep, (h, w), len(frames), voxel_size, min_valid_fraction),
        }
    return {
        "reason": None,
        "score": sum(s for s, _ in scores) / len(scores),
        "num_pairs": len(scores),
        "voxels_per_pair": sum(v for _, v in scores) / len(scores),
        "per_pair": per_pair,
    }


def voxel_features(cells: torch.Tensor, positions, keep, voxel_size: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per frame: the sorted keys of the voxels its kept cells fall in, and each voxel's mean
    unit feature, re-normalised (float64). ``cells`` (F, h*w, C)."""
    feats = normalize(cells.float())  # float32: (F, h*w, C) is large
    vox = torch.floor(positions / voxel_size).long()
    if bool(keep.any()):
        lo = vox[keep].min(0).values
        span = vox[keep].max(0).values - lo + 1
    else:
        lo, span = torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)
    per_frame = []
    for k in range(len(cells)):
        v = vox[k][keep[k]] - lo
        key = (v[:, 0] * span[1] + v[:, 1]) * span[2] + v[:, 2]
        uniq, inv = torch.unique(key, return_inverse=True)
        mean = torch.zeros(len(uniq), cells.shape[-1]).index_add_(0, inv, feats[k][keep[k]])
        per_frame.append((uniq, normalize(mean.double())))
    return per_frame


def _no_score_reason(keep, grid, num_frames, voxel_size, min_valid_fraction) -> str:
    h, w = grid
    if not bool(keep.any()):
        return (
            f"no feature cell of the {h}x{w} grid has valid depth in at least "
            f"{min_valid_fraction:g} of its depth pixels (paper_min_valid_fraction), in any frame"
        )
    return (
        f"none of the {num_frames - 1} adjacent frame pairs shares a {voxel_size:g} m voxel at this "
        f"{h}x{w} grid resolution (one position per cell; coarse cells or large motion between "
        f"adjacent frames leave none in common): try a larger paper_voxel_size or closer frames"
    )


def _intersect(a: torch.Tensor, b: torch.Tensor):
    """Common values of two sorted unique 1-D tensors and their indices in each."""
    if len(a) == 0 or len(b) == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty, empty
    pos = torch.searchsorted(b, a).clamp(max=len(b) - 1)
    hit = b[pos] == a
    return a[hit], hit.nonzero().flatten(), pos[hit]
