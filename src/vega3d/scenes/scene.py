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
        # Scenes come from load_scene and synthetic_scene, which check every file and argument;
        # these are the invariants they guarantee (shapes and units in the module docstring).
        c, d, p, n = self.color, self.depth, self.poses, len(self.frame_ids)
        assert c.dtype == torch.uint8 and c.ndim == 4 and c.shape[-1] == 3 and c.shape[0] == n > 0, c.shape
        assert d.dtype == torch.float32 and d.ndim == 3 and d.shape[0] == n, (d.dtype, d.shape)
        assert tuple(p.shape) == (n, 4, 4), p.shape
        for k in (self.intrinsics_color, self.intrinsics_depth):
            assert tuple(k.shape) == (3, 3) and float(k[0, 0]) > 0 and float(k[1, 1]) > 0, k
        assert self.axis_align is None or tuple(self.axis_align.shape) == (4, 4)

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
