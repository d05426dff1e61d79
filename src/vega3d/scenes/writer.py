"""Write a :class:`Scene` to disk in a ScanNet layout that :func:`load_scene` reads back.

Colour is written as lossless PNG in ``color/`` for the SensReader layout (ScanNet's exporter
writes JPEG; the loader reads both), and as JPEG (quality 95, no chroma subsampling) for ``posed_images``, whose depth
PNGs share the folder so colour must be ``.jpg``. Depth is uint16 PNG in millimetres, or in
``depth_scale`` units per metre (``depth_scale.txt`` is written whenever the scale is not 1000);
depth beyond the uint16 range is an error, not clipped. Poses and intrinsics are 4x4 text
matrices (``%.9f``); non-finite poses are written as ScanNet does (``-inf`` rows stay ``-inf``).
``axis_align`` (if any) goes to ``axis_align_matrix.txt``. File names are zero-padded to 5 digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vega3d.errors import Vega3DError
from vega3d.scenes.loaders import DEFAULT_DEPTH_SCALE, LAYOUTS, PIXEL_CENTRE_SHIFT
from vega3d.scenes.scene import Scene


def _write_matrix(path: Path, m: np.ndarray) -> None:
    lines = [" ".join(f"{x:.9f}" if np.isfinite(x) else str(float(x)) for x in row) for row in m]
    path.write_text("\n".join(lines) + "\n")


def _intrinsics4(k: torch.Tensor) -> np.ndarray:
    """4x4 file matrix in the files' convention (pixel centres at integers; see loaders)."""
    m = np.eye(4)
    m[:3, :3] = k.double().numpy()
    m[0, 2] -= PIXEL_CENTRE_SHIFT
    m[1, 2] -= PIXEL_CENTRE_SHIFT
    return m


def _depth_units(scene: Scene, root: Path, layout: str, depth_scale: float) -> np.ndarray:
    """The depth as uint16 ``depth_scale`` units per metre, once every argument is checked."""
    problems = []
    if layout not in LAYOUTS:
        problems.append(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not (np.isfinite(depth_scale) and depth_scale > 0):
        problems.append(f"depth_scale must be a positive number of units per metre, got {depth_scale!r}")
    if any(int(f) < 0 for f in scene.frame_ids):
        problems.append(f"frame ids must be >= 0 to name files, got {list(scene.frame_ids)[:10]}")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        problems.append(f"needs an empty or new folder, got {root}")
    raw = None if problems else torch.round(scene.depth.double() * depth_scale)
    if raw is not None and float(raw.max()) > 65535:
        problems.append(
            f"depth up to {float(scene.depth.max()):.3f} m does not fit uint16 at {depth_scale:g} units per metre "
            f"(max {65535 / depth_scale:.3f} m); use a smaller depth_scale"
        )
    if problems:
        raise Vega3DError("write_scene: " + "; ".join(problems))
    return raw.numpy().astype(np.uint16)


def _layout_paths(root: Path, layout: str):
    """Creates the folders; returns ``frame_file(kind, name)`` (kind: color/depth/pose) and the
    colour and depth intrinsics files."""
    ext = {"color": "png" if layout == "sensreader" else "jpg", "depth": "png", "pose": "txt"}
    if layout == "sensreader":
        for d in ("color", "depth", "pose", "intrinsic"):
            (root / d).mkdir(parents=True, exist_ok=True)
        return (
            lambda kind, name: root / kind / f"{name}.{ext[kind]}",
            root / "intrinsic" / "intrinsic_color.txt",
            root / "intrinsic" / "intrinsic_depth.txt",
        )
    root.mkdir(parents=True, exist_ok=True)
    return lambda kind, name: root / f"{name}.{ext[kind]}", root / "intrinsic.txt", root / "depth_intrinsic.txt"


def write_scene(
    scene: Scene,
    path: str | Path,
    layout: str = "sensreader",
    *,
    depth_scale: float = DEFAULT_DEPTH_SCALE,
    jpeg_quality: int = 95,
) -> Path:
    """Write ``scene`` under ``path`` (created; must be empty or absent) and return the path.

    ``depth_scale``: depth units per metre in the PNGs (1000 = millimetres, ScanNet). Depth is
    rounded to the nearest unit, so a round trip is exact to ``0.5 / depth_scale`` metres.
    """
    root = Path(path)
    raw = _depth_units(scene, root, layout, depth_scale)
    frame_file, k_color, k_depth = _layout_paths(root, layout)
    _write_matrix(k_color, _intrinsics4(scene.intrinsics_color))
    _write_matrix(k_depth, _intrinsics4(scene.intrinsics_depth))
    if depth_scale != DEFAULT_DEPTH_SCALE:
        (root / "depth_scale.txt").write_text(f"{depth_scale:g}\n")
    if scene.axis_align is not None:
        _write_matrix(root / "axis_align_matrix.txt", scene.axis_align.double().numpy())
    colors = scene.color.numpy()
    poses = scene.poses.double().numpy()
    for k, fid in enumerate(scene.frame_ids):
        name = f"{int(fid):05d}"
        img = Image.fromarray(colors[k])
        if layout == "sensreader":
            img.save(frame_file("color", name))
        else:
            img.save(frame_file("color", name), quality=jpeg_quality, subsampling=0)
        Image.fromarray(raw[k]).save(frame_file("depth", name))
        _write_matrix(frame_file("pose", name), poses[k])
    return root
