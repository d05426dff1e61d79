"""Camera geometry for the probe: depth back-projection, reprojection, visibility.

Conventions (DESIGN.md): poses are camera-to-world 4x4 in OpenCV axes (x right, y down,
z forward), metres; intrinsics are 3x3 pinhole matrices with pixel centres at +0.5.
Colour and depth come from one registered camera (ScanNet, TUM RGB-D): they share the
optical centre and the pose and differ only in intrinsics, so a depth pixel maps to a
colour pixel by the depth-independent homography ``K_color @ inv(K_depth)``.
"""

from __future__ import annotations

import torch


def pixel_grid(height: int, width: int, dtype=torch.float64) -> torch.Tensor:
    """(height*width, 2) pixel-centre coordinates ``(x, y)`` in row-major order."""
    ys = torch.arange(height, dtype=dtype) + 0.5
    xs = torch.arange(width, dtype=dtype) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)


def apply_homography(hmat: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Map pixel coordinates ``xy`` (..., 2) by a 3x3 homography."""
    ones = torch.ones_like(xy[..., :1])
    p = torch.cat([xy, ones], dim=-1) @ hmat.T.to(xy.dtype)
    return p[..., :2] / p[..., 2:3]


def unproject(xy: torch.Tensor, z: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Camera-frame points (..., 3) of pixels ``xy`` (..., 2) at z-depth ``z`` (...) metres."""
    kinv = torch.linalg.inv(k.to(xy.dtype))
    ones = torch.ones_like(xy[..., :1])
    rays = torch.cat([xy, ones], dim=-1) @ kinv.T
    return rays * z.unsqueeze(-1)


def transform(mat: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply 4x4 rigid transforms ``mat`` (..., 4, 4) to ``points`` (..., P, 3)."""
    return points @ mat[..., :3, :3].transpose(-1, -2) + mat[..., None, :3, 3]


def project(points_cam: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates (..., 2) and z-depth (...) of camera-frame points (..., 3).

    Points at or behind the camera get non-finite-free but meaningless pixels; callers
    mask them with ``z > 0``.
    """
    z = points_cam[..., 2]
    safe = torch.where(z.abs() > 1e-9, z, torch.full_like(z, 1e-9))
    uvw = points_cam @ k.to(points_cam.dtype).T
    return uvw[..., :2] / safe.unsqueeze(-1), z


def invert_poses(poses: torch.Tensor) -> torch.Tensor:
    """World-to-camera matrices (M, 4, 4) of finite camera-to-world ``poses`` (M, 4, 4)
    (invalid poses are excluded before; :func:`vega3d.probe.score.scored_frames` is the check at the edge)."""
    p = poses.to(torch.float64)
    assert bool(torch.isfinite(p).all()), "non-finite pose passed to the probe geometry"
    return torch.linalg.inv(p)


def lookup_depth(depth: torch.Tensor, frame: torch.Tensor, xy_depth: torch.Tensor) -> torch.Tensor:
    """Depth (P,) at the nearest depth pixel of continuous coordinates ``xy_depth`` (P, 2).

    ``depth`` is (N, Hd, Wd); ``frame`` (P,) long selects the frame. Pixels outside the
    image read 0 (invalid).
    """
    hd, wd = depth.shape[1], depth.shape[2]
    u = torch.floor(xy_depth[:, 0]).long()
    v = torch.floor(xy_depth[:, 1]).long()
    inside = (u >= 0) & (u < wd) & (v >= 0) & (v < hd) & torch.isfinite(xy_depth).all(-1)
    flat = frame * (hd * wd) + v.clamp(0, hd - 1) * wd + u.clamp(0, wd - 1)
    d = depth.reshape(-1)[flat].to(torch.float64)
    return torch.where(inside, d, torch.zeros_like(d))


def rotation_angle_deg(r_a: torch.Tensor, r_b: torch.Tensor) -> torch.Tensor:
    """Angle (degrees) of the relative rotation between rotation matrices (..., 3, 3)."""
    rel = r_a.transpose(-1, -2) @ r_b
    tr = rel.diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.rad2deg(torch.acos(((tr - 1) / 2).clamp(-1.0, 1.0)))
