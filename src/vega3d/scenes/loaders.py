"""Load posed RGB-D scans from disk into a :class:`Scene`.

Two ScanNet folder layouts are detected automatically (docs/scenes.md has the details):

``sensreader`` — the ScanNet SensReader export (``reader.py --export_*``)::

    color/<id>.jpg (or .png)        8-bit RGB
    depth/<id>.png                  16-bit, millimetres (or depth_scale.txt units per metre)
    pose/<id>.txt                   4x4 camera-to-world
    intrinsic/intrinsic_color.txt   4x4 (top-left 3x3 used); extrinsic_*.txt ignored
    intrinsic/intrinsic_depth.txt
    depth_scale.txt                 optional: depth units per metre (default 1000; TUM: 5000)

``posed_images`` — EmbodiedScan's ``generate_image_scannet.py`` output, used by Video-3D LLM::

    <id>.jpg  <id>.png  <id>.txt    colour, 16-bit depth (mm), 4x4 camera-to-world pose
    intrinsic.txt                   4x4 colour intrinsics
    depth_intrinsic.txt             4x4 depth intrinsics (if absent, allowed only when depth
                                    and colour have the same size: the colour intrinsics are
                                    used, logged and recorded in ``extras``)
    depth_scale.txt                 optional, as above

Frame files are those whose name (without extension) is all digits; they sort numerically
(``2`` before ``10``, zero-padded or not); other files are ignored. Either layout may also hold
``axis_align_matrix.txt`` (4x4) or ScanNet's ``<scan>.txt`` meta file with ``axisAlignment``.

Poses that are not finite (ScanNet writes ``-inf`` for lost tracking) are kept and flagged by
``Scene.pose_valid``, logged, and listed in ``extras["invalid_pose_frame_ids"]``. Depth 0 = no
reading. Only the selected frames' images and poses are read; a progress bar appears from 64
frames on (a whole ScanNet scan at 1296x968 is several GB: pass ``frames``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vega3d.errors import Vega3DError
from vega3d.progress import progress
from vega3d.scenes.sampling import sample_frames
from vega3d.scenes.scene import Scene

logger = logging.getLogger("vega3d.scenes")

LAYOUTS = ("sensreader", "posed_images")
DEFAULT_DEPTH_SCALE = 1000.0  # ScanNet: depth PNG units per metre (millimetres)
_FRAME_NAME = re.compile(r"^(\d+)\.([A-Za-z]+)$")


# ---------------------------------------------------------------------------- file reading
def read_matrix(path: Path, what: str, shapes: tuple[tuple[int, int], ...] = ((4, 4),)) -> np.ndarray:
    """A whitespace-separated text matrix as float64; ``shapes`` lists the accepted (rows, cols)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        text = f"<unreadable: {err}>"
    try:  # rows of other lengths or words are a ValueError
        values = np.array([line.split() for line in text.splitlines() if line.strip()], dtype=np.float64)
    except ValueError:
        values = np.zeros(0)
    if values.shape not in shapes:
        want = " or ".join(f"{r}x{c}" for r, c in shapes)
        raise Vega3DError(
            f"{path}: {what} must be a {want} matrix of numbers (one row per line), found {text.strip()[:80]!r}"
        )
    return values


# Intrinsics files (ScanNet, TUM, OpenCV calibration) put pixel centres at integer coordinates;
# the library puts them at +0.5 (DESIGN.md). Reading adds this to (cx, cy); writing subtracts it.
PIXEL_CENTRE_SHIFT = 0.5


def read_intrinsics(path: Path, image_size: tuple[int, int], what: str) -> torch.Tensor:
    """(3, 3) pinhole matrix from a 4x4 (ScanNet) or 3x3 text file, checked against (H, W).

    The file's convention (pixel centres at integers, as calibrated by OpenCV) is converted to
    the library's (centres at +0.5): ``cx + 0.5``, ``cy + 0.5``.
    """
    m = read_matrix(path, what, ((4, 4), (3, 3)))[:3, :3]
    h, w = image_size
    ok = (
        np.isfinite(m).all()
        and m[0, 0] > 0
        and m[1, 1] > 0
        and m[1, 0] == 0
        and m[2, 0] == 0
        and m[2, 1] == 0
        and abs(m[2, 2] - 1) < 1e-6
    )
    if not ok:
        raise Vega3DError(
            f"{path}: {what} must be a pinhole matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] "
            f"with fx, fy > 0, found {m.tolist()}"
        )
    if not (0.1 * w < m[0, 2] < 0.9 * w and 0.1 * h < m[1, 2] < 0.9 * h):
        raise Vega3DError(
            f"{path}: {what} has principal point (cx, cy) = ({m[0, 2]:g}, {m[1, 2]:g}) outside "
            f"its {w}x{h} image's central 80%; expected intrinsics for that image size "
            f"(colour and depth swapped, or images resized without their intrinsics?)"
        )
    m = m.copy()
    m[0, 2] += PIXEL_CENTRE_SHIFT
    m[1, 2] += PIXEL_CENTRE_SHIFT
    return torch.from_numpy(m)


def read_pose(path: Path) -> np.ndarray:
    """4x4 camera-to-world pose; non-finite poses are returned as read (invalid, flagged later)."""
    pose = read_matrix(path, "pose")
    if not np.isfinite(pose).all():
        return pose
    r = pose[:3, :3]
    ortho = np.abs(r.T @ r - np.eye(3)).max()
    det = float(np.linalg.det(r))
    if ortho > 1e-2 or abs(det - 1) > 1e-2 or np.abs(pose[3] - [0, 0, 0, 1]).max() > 1e-6:
        kind = "singular (not invertible)" if abs(det) < 1e-6 else "not rigid"
        raise Vega3DError(
            f"{path}: pose must be a rigid camera-to-world matrix (orthonormal rotation with "
            f"det +1, last row 0 0 0 1); found a {kind} matrix: det {det:.4g}, |R^T R - I| {ortho:.3g}, "
            f"last row {pose[3].tolist()}"
        )
    return pose


def _read_image(path: Path, modes: tuple[str, ...], expected: str) -> np.ndarray:
    """The image at ``path`` as an array; its PIL mode must be one of ``modes`` (``expected`` in words)."""
    try:
        with Image.open(path) as img:
            img.load()
            mode, array = img.mode, np.asarray(img)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise Vega3DError(f"{path}: cannot read image: {exc}") from None
    if mode not in modes:
        raise Vega3DError(f"{path}: {expected}, found mode {mode!r}")
    return array


def read_color(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    return _read_image(path, ("RGB",), "colour image must be 8-bit RGB")


def read_depth(path: Path) -> np.ndarray:
    """(H, W) uint16 raw depth units."""
    modes = ("I;16", "I;16B", "I;16L")
    return _read_image(path, modes, "depth image must be a 16-bit single-channel PNG (uint16)").astype(np.uint16)


def read_depth_scale(path: Path) -> float:
    try:
        text = path.read_text().split()
        scale = float(text[0]) if len(text) == 1 else float("nan")
    except (OSError, ValueError, UnicodeDecodeError):
        scale = float("nan")
    if not (np.isfinite(scale) and scale > 0):
        raise Vega3DError(
            f"{path}: depth_scale.txt must hold one positive number (depth units per metre, "
            f"e.g. 1000 for millimetres), found {path.read_text()[:40]!r}"
        )
    return scale


def read_axis_align(folder: Path) -> torch.Tensor | None:
    """Optional (4, 4) axis alignment: ``axis_align_matrix.txt`` or ScanNet's ``<scan>.txt`` meta."""
    plain = folder / "axis_align_matrix.txt"
    if plain.is_file():
        return torch.from_numpy(read_matrix(plain, "axis alignment"))
    meta = folder / f"{folder.name}.txt"
    if meta.is_file() and not meta.stem.isdigit():
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("axisAlignment"):
                try:
                    values = [float(x) for x in line.split("=", 1)[1].split()]
                except ValueError:
                    values = []
                if len(values) != 16:
                    raise Vega3DError(f"{meta}: axisAlignment must be 16 numbers, found {line[:80]!r}")
                return torch.tensor(values, dtype=torch.float64).reshape(4, 4)
    return None


# ---------------------------------------------------------------------------- frame indexing
def _index(folder: Path, extensions: tuple[str, ...], what: str) -> dict[int, Path]:
    """Frame id -> file for files named ``<digits>.<ext>`` in ``folder`` (an existing folder)."""
    found: dict[int, Path] = {}
    for p in folder.iterdir():
        m = _FRAME_NAME.match(p.name)
        if not m or m.group(2).lower() not in extensions or not p.is_file():
            continue
        fid = int(m.group(1))
        if fid in found:
            raise Vega3DError(f"{folder}: frame {fid} has two {what} files: {found[fid].name} and {p.name}")
        found[fid] = p
    if not found:
        raise Vega3DError(f"{folder}: no {what} files named <frame number>.{'/'.join(extensions)}")
    return found


def _match_ids(root: Path, files: dict[str, dict[int, Path]]) -> list[int]:
    """The common, numerically sorted frame ids; error if colour/depth/pose ids differ."""
    (ref_name, ref), *others = files.items()
    for name, idx in others:
        if set(idx) != set(ref):
            only_ref = sorted(set(ref) - set(idx))[:5]
            only_other = sorted(set(idx) - set(ref))[:5]
            raise Vega3DError(
                f"{root}: {len(ref)} {ref_name} frames but {len(idx)} {name} frames, and their frame ids differ "
                f"(only {ref_name}: {only_ref}{'...' if len(set(ref) - set(idx)) > 5 else ''}; only {name}: "
                f"{only_other}{'...' if len(set(idx) - set(ref)) > 5 else ''}); expected one of each per frame"
            )
    return sorted(ref)


LAYOUT_HELP = (
    "the SensReader layout (color/, depth/, pose/, intrinsic/) or the posed_images layout "
    "(NNNNN.jpg, NNNNN.png, NNNNN.txt, intrinsic.txt)"
)


def detect_layout(path: str | Path) -> str:
    """``"sensreader"`` or ``"posed_images"`` for a scan folder (Vega3DError if neither)."""
    root = Path(path)
    if not root.is_dir():
        found = "is a file, not a folder" if root.is_file() else "scan folder does not exist"
        raise Vega3DError(f"{root}: {found}; expected a scan folder in {LAYOUT_HELP}")
    if any((root / d).is_dir() for d in ("color", "depth", "pose", "intrinsic")):
        return "sensreader"
    if (root / "intrinsic.txt").is_file() or any(_FRAME_NAME.match(p.name) for p in root.iterdir()):
        return "posed_images"
    raise Vega3DError(f"{root}: not a scan folder; expected {LAYOUT_HELP}")


def _select(ids: list[int], frames, root: Path) -> list[int]:
    """The frame ids ``load_scene(frames=...)`` asks for: all, a uniform sample, or the listed ones."""
    if frames is None:
        return ids
    if isinstance(frames, (int, np.integer)) and not isinstance(frames, bool):
        return [ids[i] for i in sample_frames(len(ids), int(frames))]
    if isinstance(frames, (np.ndarray, torch.Tensor)):
        frames = _id_array(frames, root)
    if isinstance(frames, (str, bytes, bool)) or not isinstance(frames, Sequence):
        raise Vega3DError(f"load_scene({root}): frames must be None, an int or a list of frame ids, got {frames!r}")
    wanted = []
    for f in frames:
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)):
            raise Vega3DError(f"load_scene({root}): frame ids must be ints, got {f!r}")
        wanted.append(int(f))
    have = set(ids)
    missing = [f for f in wanted if f not in have]
    problem = None
    if not wanted:
        problem = "the frame list is empty"
    elif len(set(wanted)) != len(wanted):
        problem = f"frame ids listed more than once: {wanted}"
    elif missing:
        problem = f"frame ids {missing[:10]} not in the scan ({len(ids)} frames, ids {ids[0]}..{ids[-1]})"
    if problem:
        raise Vega3DError(f"load_scene({root}): {problem}")
    return wanted


def _id_array(frames, root: Path) -> list[int]:
    """A 1-D integer numpy array or tensor of frame ids as a list."""
    integer = frames.dtype.kind in "iu" if isinstance(frames, np.ndarray) else not frames.is_floating_point()
    if frames.ndim != 1 or not integer or frames.dtype == torch.bool:
        raise Vega3DError(
            f"load_scene({root}): a frame id array must be 1-D, got shape {tuple(frames.shape)}; "
            f"frame ids must be ints, got dtype {frames.dtype}"
        )
    return [int(f) for f in frames.tolist()]


def _same_size(arrays: list[np.ndarray], paths: list[Path], what: str) -> None:
    shape = arrays[0].shape
    for a, p in zip(arrays, paths):
        if a.shape != shape:
            raise Vega3DError(
                f"{p}: {what} is {a.shape[1]}x{a.shape[0]}, but {paths[0].name} is "
                f"{shape[1]}x{shape[0]}; expected one size for all frames"
            )


# ---------------------------------------------------------------------------- the loader
def load_scene(path: str | Path, frames: None | int | Sequence[int] = None, *, name: str | None = None) -> Scene:
    """Load a scan folder (layout detected) into a :class:`Scene`.

    ``frames``: ``None`` = every frame; an int = that many frames sampled uniformly with
    :func:`sample_frames` (all of them if fewer exist; ``extras["num_available_frames"]`` says how
    many there were); a list = exactly those frame ids (as in the file names), in that order.
    ``name`` defaults to the folder name. Raises :class:`Vega3DError` naming the file on bad input.
    """
    root = Path(path)
    layout = detect_layout(root)
    files, k_color_file, k_depth_file = _layout_files(root, layout)
    ids = _match_ids(root, files)
    chosen = _select(ids, frames, root)
    colors, depths = _read_images(root, [files["colour"][i] for i in chosen], [files["depth"][i] for i in chosen])
    poses = np.stack([read_pose(files["pose"][i]) for i in chosen])
    extras: dict = {"layout": layout}
    k_color, k_depth = _intrinsics(root, k_color_file, k_depth_file, colors.shape[1:3], depths.shape[1:], extras)
    scale_file = root / "depth_scale.txt"
    scale = read_depth_scale(scale_file) if scale_file.is_file() else DEFAULT_DEPTH_SCALE
    invalid = [fid for fid, p in zip(chosen, poses) if not np.isfinite(p).all()]
    if invalid:
        logger.warning(
            "%s: %d of %d loaded frames have non-finite poses (frame ids %s%s); they are kept "
            "and flagged invalid in Scene.pose_valid",
            root,
            len(invalid),
            len(chosen),
            invalid[:10],
            "..." if len(invalid) > 10 else "",
        )
    extras.update({"depth_scale": scale, "num_available_frames": len(ids), "invalid_pose_frame_ids": invalid})
    return Scene(
        color=torch.from_numpy(colors),
        depth=torch.from_numpy(depths.astype(np.float32)) / np.float32(scale),
        poses=torch.from_numpy(poses),
        intrinsics_color=k_color,
        intrinsics_depth=k_depth,
        frame_ids=tuple(chosen),
        axis_align=read_axis_align(root),
        name=name or root.resolve().name,
        source=str(root),
        extras=extras,
    )


def _layout_files(root: Path, layout: str) -> tuple[dict[str, dict[int, Path]], Path, Path]:
    """The frame files (``{"colour"|"depth"|"pose": {frame id: file}}``) and the colour and depth
    intrinsics files of a scan folder; the depth one may be absent (posed_images)."""
    folder = "folder; the SensReader layout needs color/, depth/, pose/ and intrinsic/"
    intrinsics = "intrinsics file (4x4 matrix)"
    if layout == "sensreader":
        folders = {"colour": root / "color", "depth": root / "depth", "pose": root / "pose"}
        k_color, k_depth = root / "intrinsic" / "intrinsic_color.txt", root / "intrinsic" / "intrinsic_depth.txt"
        required = {**dict.fromkeys([*folders.values(), root / "intrinsic"], folder), k_color: intrinsics}
        required[k_depth] = intrinsics
    else:
        folders = {"colour": root, "depth": root, "pose": root}
        k_color, k_depth = root / "intrinsic.txt", root / "depth_intrinsic.txt"
        required = {k_color: intrinsics}
    missing = [p for p, what in required.items() if not (p.is_dir() if what == folder else p.is_file())]
    if missing:
        raise Vega3DError(f"{missing[0]}: missing {required[missing[0]]}")
    extensions = {"colour": ("jpg", "jpeg", "png") if layout == "sensreader" else ("jpg", "jpeg"), "depth": ("png",)}
    files = {what: _index(folder, extensions.get(what, ("txt",)), what) for what, folder in folders.items()}
    return files, k_color, k_depth


def _read_images(root: Path, color_paths: list[Path], depth_paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Colour (N, H, W, 3) uint8 and raw depth (N, Hd, Wd) uint16 of the given frames, each
    checked to have one size for all frames; a progress bar from 64 frames on."""
    colors, depths = [], []
    bar = progress(total=len(color_paths), desc=f"loading {root.name}", unit="frame", enabled=len(color_paths) >= 64)
    with bar:
        for cp, dp in zip(color_paths, depth_paths):
            colors.append(read_color(cp))
            depths.append(read_depth(dp))
            bar.update()
    _same_size(colors, color_paths, "colour image")
    _same_size(depths, depth_paths, "depth image")
    return np.stack(colors), np.stack(depths)


def _intrinsics(root: Path, k_color_file: Path, k_depth_file: Path, color_size, depth_size, extras: dict):
    """(colour, depth) intrinsics; without a depth file (posed_images) the colour ones serve for
    depth of the same size, which is logged and recorded in ``extras``."""
    k_color = read_intrinsics(k_color_file, color_size, "colour intrinsics")
    if k_depth_file.is_file():
        return k_color, read_intrinsics(k_depth_file, depth_size, "depth intrinsics")
    if tuple(depth_size) != tuple(color_size):
        raise Vega3DError(
            f"{k_depth_file}: missing depth intrinsics, and depth ({depth_size[1]}x{depth_size[0]}) "
            f"differs in size from colour ({color_size[1]}x{color_size[0]})"
        )
    extras["depth_intrinsics_from"] = k_color_file.name
    logger.warning(
        "%s: no %s; depth has the colour image size %dx%d, so the colour intrinsics are used for depth",
        root,
        k_depth_file.name,
        color_size[1],
        color_size[0],
    )
    return k_color, k_color.clone()
