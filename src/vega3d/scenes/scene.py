"""The :class:`Scene`: posed RGB-D frames of one scan.

Conventions (see DESIGN.md):

- ``color``: (N, H, W, 3) uint8 RGB.
- ``depth``: (N, Hd, Wd) float32, metres, 0 = invalid. The depth image may have another
  resolution than colour; each has its own intrinsics.
- ``poses``: (N, 4, 4) float64 camera-to-world, OpenCV camera axes (x right, y down,
  z forward), metres: ``X_world = poses[k] @ [X_cam; 1]``. A frame whose pose is not
  finite (ScanNet writes ``-inf`` rows for lost tracking) is kept, and flagged by
  :attr:`Scene.pose_valid`; consumers must skip such frames, never use them.
- ``intrinsics_color`` / ``intrinsics_depth``: (3, 3) float64 pinhole matrices for the
  colour and depth image sizes, pixel centres at +0.5 (pixel (u, v) covers
  [u, u+1) x [v, v+1), so the centre of the top-left pixel is (0.5, 0.5)).
- ``frame_ids``: the frame numbers in the source (e.g. ``[0, 20, 40, ...]``).
- ``axis_align``: optional (4, 4) ScanNet axis-alignment matrix (world → aligned world).
- ``extras``: free-form metadata (loader: layout, depth scale, invalid-pose frame ids;
  synthetic scenes: per-pixel surface ids). Tensors in it whose first dimension is N are
  per-frame and follow :meth:`Scene.select`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from vega3d.errors import Vega3DError


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise Vega3DError(message)


@dataclass(frozen=True)
class Scene:
    """Posed RGB-D frames of one scan (shapes and units in the module docstring)."""

    color: torch.Tensor
    depth: torch.Tensor
    poses: torch.Tensor
    intrinsics_color: torch.Tensor
    intrinsics_depth: torch.Tensor
    frame_ids: tuple[int, ...]
    axis_align: torch.Tensor | None = None
    name: str = "scene"
    source: str | None = None
    extras: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        where = f"scene {self.name!r}" + (f" ({self.source})" if self.source else "")
        c, d, p = self.color, self.depth, self.poses
        _check(
            isinstance(c, torch.Tensor) and c.dtype == torch.uint8 and c.ndim == 4 and c.shape[-1] == 3,
            f"{where}: color must be a uint8 tensor (N, H, W, 3), got "
            f"{getattr(c, 'dtype', type(c))} {tuple(getattr(c, 'shape', ()))}",
        )
        n = c.shape[0]
        _check(n > 0, f"{where}: has no frames")
        _check(
            isinstance(d, torch.Tensor) and d.dtype == torch.float32 and d.ndim == 3,
            f"{where}: depth must be a float32 tensor (N, Hd, Wd) in metres, got "
            f"{getattr(d, 'dtype', type(d))} {tuple(getattr(d, 'shape', ()))}",
        )
        _check(
            isinstance(p, torch.Tensor) and p.ndim == 3 and tuple(p.shape[1:]) == (4, 4),
            f"{where}: poses must be (N, 4, 4), got {tuple(getattr(p, 'shape', ()))}",
        )
        _check(
            d.shape[0] == n and p.shape[0] == n,
            f"{where}: frame counts differ: {n} colour, {d.shape[0]} depth, {p.shape[0]} poses",
        )
        _check(len(self.frame_ids) == n, f"{where}: {len(self.frame_ids)} frame ids for {n} frames")
        _check(
            bool(torch.isfinite(d).all()) and bool((d >= 0).all()),
            f"{where}: depth must be finite and >= 0 metres (0 = invalid)",
        )
        for name in ("intrinsics_color", "intrinsics_depth"):
            k = getattr(self, name)
            _check(
                isinstance(k, torch.Tensor)
                and tuple(k.shape) == (3, 3)
                and bool(torch.isfinite(k).all())
                and float(k[0, 0]) > 0
                and float(k[1, 1]) > 0,
                f"{where}: {name} must be a finite (3, 3) pinhole matrix with fx, fy > 0, got {k!r}",
            )
        if self.axis_align is not None:
            _check(tuple(self.axis_align.shape) == (4, 4), f"{where}: axis_align must be (4, 4)")
        valid = self.pose_valid
        if bool(valid.any()):
            rot = p[valid][:, :3, :3].double()
            det = torch.linalg.det(rot)
            _check(
                bool(((det - 1).abs() < 1e-2).all()) and bool((p[valid][:, 3, :3].abs() < 1e-6).all()),
                f"{where}: finite poses must be rigid camera-to-world matrices (rotation with det +1, "
                f"last row [0, 0, 0, 1]); got rotation determinants {det.tolist()[:4]}...",
            )

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return int(self.color.shape[0])

    @property
    def pose_valid(self) -> torch.Tensor:
        """(N,) bool: True where the pose is finite (usable)."""
        return torch.isfinite(self.poses).flatten(1).all(dim=1)

    @property
    def image_size(self) -> tuple[int, int]:
        """Colour (H, W) in pixels."""
        return int(self.color.shape[1]), int(self.color.shape[2])

    @property
    def depth_size(self) -> tuple[int, int]:
        """Depth (Hd, Wd) in pixels."""
        return int(self.depth.shape[1]), int(self.depth.shape[2])

    def frames(self) -> torch.Tensor:
        """Colour as float (N, 3, H, W) in [0, 1] — the image convention at API boundaries."""
        return self.color.permute(0, 3, 1, 2).float().div_(255.0)

    def select(self, indices: Sequence[int]) -> Scene:
        """A scene with only the frames at ``indices`` (positions, in the given order)."""
        idx = [int(i) for i in indices]
        for i in idx:
            _check(
                -len(self) <= i < len(self), f"scene {self.name!r}: frame index {i} out of range for {len(self)} frames"
            )
        t = torch.tensor(idx, dtype=torch.long)
        # per-frame tensors in extras (e.g. the synthetic scene's surface_id) follow the frames
        extras = {
            k: (v[t] if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == len(self) else v)
            for k, v in self.extras.items()
        }
        return replace(
            self,
            color=self.color[t],
            depth=self.depth[t],
            poses=self.poses[t],
            frame_ids=tuple(self.frame_ids[i] for i in idx),
            extras=extras,
        )
