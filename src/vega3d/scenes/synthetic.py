"""A synthetic posed RGB-D scene: a textured room with boxes and spheres, rendered by ray casting.

Everything is exact by construction, so probes and tests know the ground truth:

- **World**: metres, z up. The room is the box ``[-X, X] x [-Y, Y] x [0, Z]`` (X, Y, Z drawn from
  the seed around 2.5 x 3.0 x 2.7 m). Inside stand ``num_boxes`` axis-aligned boxes on the
  floor and float ``num_spheres`` spheres, all within 1.25 m of the room's vertical axis.
- **Textures**: solid (3D) procedural textures evaluated at the hit point, so a surface point has
  the same colour in every view: three octaves of per-channel value noise (cells 0.6, 0.2 and
  0.07 m) over a per-surface base colour, times a per-surface pattern (floor tiles, wall
  stripes, ceiling panels, 3D checkers on boxes, latitude bands on spheres). Noise never repeats inside the room.
  Shading is Lambertian from a light under the ceiling, which depends on the point and normal
  only (view independent), so colour is consistent across views.
- **Camera path**: the camera moves along a horizontal arc of ``arc_degrees`` (radius 2 m
  around the room axis, height 1.15-1.55 m) while looking at a target that wanders near the
  room centre (pan and tilt) with a small roll, so frames have real parallax and rotation.
- **Rendering**: one ray per pixel through the pixel centre (``+0.5`` convention), nearest hit
  among the six room planes, the boxes (slab test) and the spheres (quadratic). Depth is z-depth
  along the optical axis in metres; every pixel hits something, so depth is never 0.
- **Poses**: camera-to-world, OpenCV axes (x right, y down, z forward).

``extras`` carries ``surface_id`` (N, H, W) int16 at colour resolution (0-5: room planes -x, +x,
-y, +y, floor, ceiling; 6..: boxes, then spheres), ``objects`` (boxes and spheres, JSON-ready)
and ``generator`` (the arguments), so the same call reproduces the scene.
"""

from __future__ import annotations

import math

import torch

from vega3d.errors import Vega3DError
from vega3d.scenes.geometry import look_at, pixel_grid
from vega3d.scenes.scene import Scene

_NOISE_GRID = 32  # lattice size of the value-noise tables (period 32 cells per octave)
_OCTAVES = ((1 / 0.6, 0.5), (1 / 0.2, 0.3), (1 / 0.07, 0.2))  # (cells per metre, weight)


def _uniform(gen: torch.Generator, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=gen, dtype=torch.float64)


def _value_noise(points: torch.Tensor, table: torch.Tensor, freq: float) -> torch.Tensor:
    """Trilinear value noise (M, C) float32 in [0, 1] at world points (M, 3) from a (G, G, G, C) table."""
    g = table.shape[0]
    p = points.float() * freq
    i0 = torch.floor(p)
    f = p - i0
    f = f * f * (3 - 2 * f)  # smoothstep
    i0 = i0.long() % g
    i1 = (i0 + 1) % g
    flat = table.reshape(-1, table.shape[-1])
    out = torch.zeros(points.shape[0], table.shape[-1])
    for ix, wx in ((i0[:, 0], 1 - f[:, 0]), (i1[:, 0], f[:, 0])):
        for iy, wy in ((i0[:, 1], 1 - f[:, 1]), (i1[:, 1], f[:, 1])):
            base, wxy = (ix * g + iy) * g, wx * wy
            for iz, wz in ((i0[:, 2], 1 - f[:, 2]), (i1[:, 2], f[:, 2])):
                out += (wxy * wz)[:, None] * flat[base + iz]
    return out


class _Room:
    """Scene content drawn from a generator: room size, objects, textures, light."""

    def __init__(self, gen: torch.Generator, num_boxes: int, num_spheres: int):
        self.half = torch.stack([_uniform(gen, 2.3, 2.7, 1)[0], _uniform(gen, 2.8, 3.2, 1)[0]])
        self.height = float(_uniform(gen, 2.5, 2.9, 1)[0])
        self.lo = torch.tensor([-self.half[0], -self.half[1], 0.0], dtype=torch.float64)
        self.hi = torch.tensor([self.half[0], self.half[1], self.height], dtype=torch.float64)
        # boxes standing on the floor, spheres floating, all within 1.25 m of the room axis
        boxes = []
        for _ in range(num_boxes):
            r, a = _uniform(gen, 0.0, 0.8, 1)[0], _uniform(gen, 0, 2 * math.pi, 1)[0]
            size = _uniform(gen, 0.25, 0.6, 3)
            size[2] = _uniform(gen, 0.3, 1.2, 1)[0]
            c = torch.stack([r * torch.cos(a), r * torch.sin(a)])
            lo = torch.stack([c[0] - size[0] / 2, c[1] - size[1] / 2, torch.zeros((), dtype=torch.float64)])
            boxes.append((lo, lo + size))
        self.box_lo = torch.stack([b[0] for b in boxes]) if boxes else torch.zeros(0, 3, dtype=torch.float64)
        self.box_hi = torch.stack([b[1] for b in boxes]) if boxes else torch.zeros(0, 3, dtype=torch.float64)
        spheres = []
        for _ in range(num_spheres):
            rad = _uniform(gen, 0.18, 0.35, 1)[0]
            r, a = _uniform(gen, 0.0, 1.25 - float(rad), 1)[0], _uniform(gen, 0, 2 * math.pi, 1)[0]
            z = _uniform(gen, float(rad) + 0.05, 1.6, 1)[0]
            spheres.append(torch.stack([r * torch.cos(a), r * torch.sin(a), z, rad]))
        self.spheres = torch.stack(spheres) if spheres else torch.zeros(0, 4, dtype=torch.float64)
        n_surf = 6 + num_boxes + num_spheres
        self.num_surfaces = n_surf
        # per-surface base colours (saturated, varied), noise offsets and pattern scales
        hue = _uniform(gen, 0, 1, n_surf)
        sat = _uniform(gen, 0.35, 0.8, n_surf)
        val = _uniform(gen, 0.6, 0.95, n_surf)
        self.base = _hsv_to_rgb(hue, sat, val)  # (S, 3)
        self.offset = _uniform(gen, 0, 100, n_surf, 3)
        self.scale = _uniform(gen, 0.15, 0.45, n_surf)
        self.tables = [
            torch.rand(_NOISE_GRID, _NOISE_GRID, _NOISE_GRID, 3, generator=gen, dtype=torch.float64).float()
            for _ in _OCTAVES
        ]
        self.light = torch.tensor([0.3, -0.4, self.height - 0.2], dtype=torch.float64)

    def objects(self) -> dict:
        return {
            "room_lo": self.lo.tolist(),
            "room_hi": self.hi.tolist(),
            "boxes": [{"lo": lo.tolist(), "hi": hi.tolist()} for lo, hi in zip(self.box_lo, self.box_hi)],
            "spheres": [{"center": s[:3].tolist(), "radius": float(s[3])} for s in self.spheres],
        }

    # ------------------------------------------------------------------ ray casting
    def cast(self, origin: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Nearest hit of rays ``origin + t * dirs`` (dirs (M, 3), not normalised).

        Returns ``t`` (M,), surface id (M,) long, unit normal (M, 3) facing the ray origin.
        """
        m = dirs.shape[0]
        with torch.no_grad():
            inv = 1.0 / dirs  # +-inf where a component is 0, handled by the comparisons below
            # room: exit through the far plane of each axis
            far = torch.where(dirs > 0, self.hi, self.lo)
            t_axes = (far - origin) * inv
            t_axes = torch.where(dirs == 0, torch.full_like(t_axes, math.inf), t_axes)
            t, axis = t_axes.min(dim=1)
            positive = dirs.gather(1, axis[:, None])[:, 0] > 0
            sid = 2 * axis + positive.long()
            normal = torch.zeros(m, 3, dtype=torch.float64)
            normal.scatter_(1, axis[:, None], torch.where(positive, -1.0, 1.0).double()[:, None])
            # boxes: slab test
            for b in range(self.box_lo.shape[0]):
                t1 = (self.box_lo[b] - origin) * inv
                t2 = (self.box_hi[b] - origin) * inv
                tmin, tmax = torch.minimum(t1, t2), torch.maximum(t1, t2)
                tnear, ax = tmin.max(dim=1)
                tfar = tmax.min(dim=1).values
                hit = (tnear <= tfar) & (tnear > 1e-9) & (tnear < t)
                if bool(hit.any()):
                    t = torch.where(hit, tnear, t)
                    sid = torch.where(hit, torch.full_like(sid, 6 + b), sid)
                    n_b = torch.zeros(m, 3, dtype=torch.float64)
                    sign = torch.where(dirs.gather(1, ax[:, None])[:, 0] > 0, -1.0, 1.0).double()
                    n_b.scatter_(1, ax[:, None], sign[:, None])
                    normal = torch.where(hit[:, None], n_b, normal)
            # spheres: nearest root of |o + t d - c|^2 = r^2 (the camera is always outside)
            a = (dirs * dirs).sum(1)
            for s in range(self.spheres.shape[0]):
                c, r = self.spheres[s, :3], self.spheres[s, 3]
                oc = origin - c
                bq = 2 * (dirs @ oc)
                cq = oc.dot(oc) - r * r
                disc = bq * bq - 4 * a * cq
                ts = (-bq - torch.sqrt(disc.clamp(min=0))) / (2 * a)
                hit = (disc >= 0) & (ts > 1e-9) & (ts < t)
                if bool(hit.any()):
                    t = torch.where(hit, ts, t)
                    sid = torch.where(hit, torch.full_like(sid, 6 + self.box_lo.shape[0] + s), sid)
                    p = origin + ts[:, None] * dirs
                    normal = torch.where(hit[:, None], (p - c) / r, normal)
        return t, sid, normal

    def shade(self, points: torch.Tensor, sid: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] (M, 3) of surface points (view independent)."""
        q = points + self.offset[sid]
        noise = sum(w * _value_noise(q, tab, f) for (f, w), tab in zip(_OCTAVES, self.tables)).double()  # (M, 3)
        scale = self.scale[sid]
        n_boxes = self.box_lo.shape[0]
        cell = torch.floor(points / scale[:, None]).long()
        checker = ((cell.sum(1) % 2) == 0).double()
        pattern = torch.ones_like(scale)
        floor = sid == 4
        # floor tiles (2D checker in x, y), wall stripes (along the wall), 3D checkers on boxes,
        # latitude bands on spheres, panels on the ceiling
        tiles = (((cell[:, 0] + cell[:, 1]) % 2) == 0).double()
        pattern = torch.where(floor, 0.65 + 0.35 * tiles, pattern)
        panels = (
            ((torch.floor(points[:, 0] / (2 * scale)) + torch.floor(points[:, 1] / (2 * scale))) % 2) == 0
        ).double()
        pattern = torch.where(sid == 5, 0.6 + 0.4 * panels, pattern)
        walls = sid < 4
        stripes = 0.5 + 0.5 * torch.sin(points[:, 2] / scale * 2.0 + points[:, 0] + points[:, 1])
        pattern = torch.where(walls, 0.7 + 0.3 * stripes, pattern)
        boxes = (sid >= 6) & (sid < 6 + n_boxes)
        pattern = torch.where(boxes, 0.6 + 0.4 * checker, pattern)
        spheres = sid >= 6 + n_boxes
        bands = 0.5 + 0.5 * torch.cos(points[:, 2] / scale * 3.0)
        pattern = torch.where(spheres, 0.6 + 0.4 * bands, pattern)
        albedo = self.base[sid] * (0.55 + 0.45 * noise.mean(1, keepdim=True)) * pattern[:, None]
        albedo = albedo + 0.35 * (noise - 0.5)
        to_light = self.light - points
        to_light = to_light / to_light.norm(dim=1, keepdim=True).clamp(min=1e-9)
        lambert = (normal * to_light).sum(1).clamp(min=0)
        return (albedo * (0.6 + 0.4 * lambert[:, None])).clamp(0, 1)


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([5.0, 3.0, 1.0], dtype=torch.float64)
    kk = (k + h[:, None] * 6) % 6
    return v[:, None] - v[:, None] * s[:, None] * torch.clamp(torch.minimum(kk, 4 - kk), 0, 1)


def synthetic_intrinsics(height: int, width: int, fov_degrees: float = 70.0) -> torch.Tensor:
    """(3, 3) float64 pinhole matrix with horizontal field of view ``fov_degrees``, square pixels,
    principal point at the image centre ``(W/2, H/2)`` (pixel-centre ``+0.5`` convention)."""
    f = 0.5 * width / math.tan(math.radians(fov_degrees) / 2)
    return torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=torch.float64)


def synthetic_poses(num_frames: int, gen: torch.Generator, arc_degrees: float) -> torch.Tensor:
    """(N, 4, 4) camera-to-world poses along an arc around the room axis (OpenCV axes)."""
    theta0 = float(_uniform(gen, 0, 2 * math.pi, 1)[0])
    phase = _uniform(gen, 0, 2 * math.pi, 3)
    poses = []
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    for k in range(num_frames):
        s = k / max(num_frames - 1, 1)
        theta = theta0 + math.radians(arc_degrees) * s
        eye = torch.tensor(
            [2.0 * math.cos(theta), 2.0 * math.sin(theta), 1.35 + 0.2 * math.sin(2 * math.pi * s + float(phase[0]))],
            dtype=torch.float64,
        )
        # the target wanders near the room centre: pan (sideways) and tilt (height)
        pan = 0.6 * math.sin(3 * math.pi * s + float(phase[1]))
        side = torch.tensor([-math.sin(theta), math.cos(theta), 0.0], dtype=torch.float64)
        target = (
            torch.tensor([0.0, 0.0, 0.75 + 0.35 * math.sin(2 * math.pi * s + float(phase[2]))], dtype=torch.float64)
            + pan * side
        )
        roll = math.radians(4.0) * math.sin(2 * math.pi * s)
        poses.append(look_at(eye, target, up, roll=roll))
    return torch.stack(poses)


def _render(room: _Room, pose: torch.Tensor, k: torch.Tensor, height: int, width: int, with_color: bool):
    uv = pixel_grid(height, width).reshape(-1, 2)
    d_cam = torch.stack(
        [(uv[:, 0] - k[0, 2]) / k[0, 0], (uv[:, 1] - k[1, 2]) / k[1, 1], torch.ones(uv.shape[0], dtype=torch.float64)],
        dim=1,
    )
    dirs = d_cam @ pose[:3, :3].T  # world directions whose camera z component is 1
    origin = pose[:3, 3]
    t, sid, normal = room.cast(origin, dirs)
    depth = t.reshape(height, width)  # t is the z-depth because d_cam[:, 2] == 1
    if not with_color:
        return depth, None, None
    points = origin + t[:, None] * dirs
    rgb = room.shade(points, sid, normal)
    color = (rgb * 255).round().to(torch.uint8).reshape(height, width, 3)
    return depth, color, sid.to(torch.int16).reshape(height, width)


def _render_frames(room: _Room, poses, k_color, k_depth, size, depth_size):
    """Colour (N, H, W, 3) uint8, depth (N, Hd, Wd) float32 and surface ids (N, H, W) int16 for
    every pose; depth rendered again at ``depth_size`` with ``k_depth`` when it differs."""
    colors, depths, sids = [], [], []
    for pose in poses:
        depth, color, sid = _render(room, pose, k_color, *size, with_color=True)
        if tuple(depth_size) != tuple(size):
            depth, _, _ = _render(room, pose, k_depth, *depth_size, with_color=False)
        colors.append(color)
        depths.append(depth.float())
        sids.append(sid)
    return torch.stack(colors), torch.stack(depths), torch.stack(sids)


def _check_arguments(num_frames, height, width, num_boxes, num_spheres, fov_degrees, depth_size) -> None:
    ints = [("num_frames", num_frames, 1), ("height", height, 8), ("width", width, 8)]
    ints += [("num_boxes", num_boxes, 0), ("num_spheres", num_spheres, 0)]
    problems = [f"{arg} must be an int >= {lo}, got {v!r}" for arg, v, lo in ints if not isinstance(v, int) or v < lo]
    if depth_size is not None and not (len(depth_size) == 2 and all(isinstance(v, int) and v >= 8 for v in depth_size)):
        problems.append(f"depth_size must be two ints >= 8, got {depth_size!r}")
    if not 10.0 <= fov_degrees <= 150.0:
        problems.append(f"fov_degrees must be in [10, 150], got {fov_degrees}")
    if problems:
        raise Vega3DError("synthetic_scene: " + "; ".join(problems))


def synthetic_scene(
    num_frames: int = 16,
    height: int = 240,
    width: int = 320,
    seed: int = 0,
    *,
    num_boxes: int = 4,
    num_spheres: int = 3,
    fov_degrees: float = 70.0,
    arc_degrees: float = 100.0,
    depth_size: tuple[int, int] | None = None,
    name: str | None = None,
) -> Scene:
    """Render a synthetic posed RGB-D scene (see the module docstring for the world).

    Returns a :class:`Scene` with ``num_frames`` frames of colour (N, height, width, 3) uint8,
    exact z-depth (N, Hd, Wd) float32 metres (``depth_size=(Hd, Wd)``, default the colour size,
    rendered with its own intrinsics), camera-to-world poses (N, 4, 4) float64 in OpenCV axes, and
    frame ids ``0..N-1``. Deterministic by ``seed`` (an explicit ``torch.Generator``); pure torch
    on CPU (about 0.05 s per 240x320 frame).
    """
    _check_arguments(num_frames, height, width, num_boxes, num_spheres, fov_degrees, depth_size)
    hd, wd = depth_size if depth_size is not None else (height, width)
    gen = torch.Generator().manual_seed(int(seed))
    room = _Room(gen, num_boxes, num_spheres)
    poses = synthetic_poses(num_frames, gen, arc_degrees)
    k_color = synthetic_intrinsics(height, width, fov_degrees)
    k_depth = synthetic_intrinsics(hd, wd, fov_degrees)
    colors, depths, sids = _render_frames(room, poses, k_color, k_depth, (height, width), (hd, wd))
    generator = {
        "num_frames": num_frames,
        "height": height,
        "width": width,
        "seed": int(seed),
        "num_boxes": num_boxes,
        "num_spheres": num_spheres,
        "fov_degrees": fov_degrees,
        "arc_degrees": arc_degrees,
        "depth_size": [hd, wd],
    }
    return Scene(
        color=colors,
        depth=depths,
        poses=poses,
        intrinsics_color=k_color,
        intrinsics_depth=k_depth,
        frame_ids=tuple(range(num_frames)),
        name=name or f"synthetic_seed{int(seed)}",
        source="vega3d.scenes.synthetic_scene",
        extras={"surface_id": sids, "objects": room.objects(), "generator": generator},
    )
