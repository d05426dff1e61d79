"""Pinhole camera geometry for posed RGB-D frames.

Conventions (DESIGN.md): camera-to-world 4x4 poses in OpenCV camera axes (x right, y down,
z forward), metres; intrinsics K (3, 3); pixel ``(row v, column u)`` has its centre at image
coordinate ``(u + 0.5, v + 0.5)``. Depth is z-depth along the optical axis (not ray length).
"""

from __future__ import annotations

import torch


def pixel_grid(height: int, width: int, dtype=torch.float64) -> torch.Tensor:
    """(H, W, 2) image coordinates ``(u, v)`` of the pixel centres (``+0.5`` convention)."""
    v = torch.arange(height, dtype=dtype) + 0.5
    u = torch.arange(width, dtype=dtype) + 0.5
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv], dim=-1)


def backproject(depth: torch.Tensor, intrinsics: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """World points of every pixel of a depth map.

    depth (H, W) metres (z-depth), intrinsics (3, 3), pose (4, 4) camera-to-world.
    Returns (H, W, 3) float64 world coordinates (pixels with depth 0 give the camera centre;
    mask them with ``depth > 0``).
    """
    h, w = depth.shape
    uv = pixel_grid(h, w)
    k = intrinsics.double()
    z = depth.double()
    x = (uv[..., 0] - k[0, 2]) / k[0, 0] * z
    y = (uv[..., 1] - k[1, 2]) / k[1, 1] * z
    cam = torch.stack([x, y, z], dim=-1)
    p = pose.double()
    return cam @ p[:3, :3].T + p[:3, 3]


def project(points: torch.Tensor, intrinsics: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project world points (..., 3) into a camera with camera-to-world ``pose`` (4, 4).

    Returns ``(uv (..., 2), z (...))``: image coordinates (pixel (v, u) covers [u, u+1) x [v, v+1))
    and z-depth in metres (<= 0 means behind the camera).
    """
    p = pose.double()
    r, t = p[:3, :3], p[:3, 3]
    cam = (points.double() - t) @ r  # R^T (X - t), row-vector form
    k = intrinsics.double()
    z = cam[..., 2]
    safe = torch.where(z.abs() > 1e-12, z, torch.full_like(z, 1e-12))
    u = k[0, 0] * cam[..., 0] / safe + k[0, 1] * cam[..., 1] / safe + k[0, 2]
    v = k[1, 1] * cam[..., 1] / safe + k[1, 2]
    return torch.stack([u, v], dim=-1), z


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor, roll: float = 0.0) -> torch.Tensor:
    """Camera-to-world pose (4, 4) float64 at ``eye`` looking at ``target`` in OpenCV axes.

    ``up`` is the world up direction; ``roll`` (radians) turns the camera about its optical axis.
    """
    eye, target, up = eye.double(), target.double(), up.double()
    forward = target - eye
    forward = forward / forward.norm()
    right = torch.linalg.cross(forward, up)
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    c, s = torch.cos(torch.tensor(roll, dtype=torch.float64)), torch.sin(torch.tensor(roll, dtype=torch.float64))
    right, down = c * right + s * down, -s * right + c * down
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
    return pose


def depth_consistency(
    depth_i: torch.Tensor,
    pose_i: torch.Tensor,
    depth_j: torch.Tensor,
    pose_j: torch.Tensor,
    intrinsics: torch.Tensor,
    stride: int = 1,
    bilinear: bool = False,
) -> dict:
    """How well frame i's depth, moved into frame j by the poses, agrees with frame j's depth.

    Pixels of ``depth_i`` (H, W) with depth > 0 (every ``stride``-th row and column) are
    back-projected with ``intrinsics`` and ``pose_i``, projected into frame j (same intrinsics and
    image size, ``pose_j``), and compared with ``depth_j`` where they land: at the pixel they fall
    in (default), or bilinearly interpolated between the four nearest pixel centres
    (``bilinear=True``; all four must be non-zero). Only landings with a non-zero observed depth
    count. A sanity check of a scan's conventions: right poses give small ``abs_dz`` except at
    occlusions; transposed or inverted poses or flipped camera axes do not.

    Returns ``{"dz": (M,) observed minus predicted depth (float64 metres; clearly negative = the
    point is hidden behind something nearer in frame j), "abs_dz": |dz|, "median_abs_dz": float, "inside": fraction of the
    valid points landing inside frame j in front of the camera, "num_points": M}``.
    """
    h, w = depth_j.shape
    d = depth_i[::stride, ::stride]
    pts = backproject(depth_i, intrinsics, pose_i)[::stride, ::stride][d > 0]
    uv, z = project(pts, intrinsics, pose_j)
    dj = depth_j.double()
    if bilinear:
        x, y = uv[:, 0] - 0.5, uv[:, 1] - 0.5  # index space: pixel centres at integers
        x0, y0 = torch.floor(x).long(), torch.floor(y).long()
        inside = (z > 0) & (x0 >= 0) & (x0 + 1 < w) & (y0 >= 0) & (y0 + 1 < h)
        x0, y0, fx, fy = x0[inside], y0[inside], (x - torch.floor(x))[inside], (y - torch.floor(y))[inside]
        corners = torch.stack([dj[y0, x0], dj[y0, x0 + 1], dj[y0 + 1, x0], dj[y0 + 1, x0 + 1]], dim=1)
        weights = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dim=1)
        observed = (corners * weights).sum(1)
        keep = (corners > 0).all(1)
    else:
        col, row = torch.floor(uv[:, 0]).long(), torch.floor(uv[:, 1]).long()
        inside = (z > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        observed = dj[row[inside], col[inside]]
        keep = observed > 0
    dz = observed[keep] - z[inside][keep]
    abs_dz = dz.abs()
    return {
        "dz": dz,
        "abs_dz": abs_dz,
        "median_abs_dz": float(abs_dz.median()) if abs_dz.numel() else float("nan"),
        "inside": float(inside.double().mean()) if inside.numel() else 0.0,
        "num_points": int(abs_dz.numel()),
    }
