"""What ``vega3d extract`` reads: scan folders, videos and frame folders, each one item.

Kinds and their item ids (deterministic, independent of where the data lives):

- ``scan``: a ScanNet SensReader or ``posed_images`` folder (:func:`vega3d.scenes.load_scene`).
  A folder is a scan when it has a ``color/``, ``depth/``, ``pose/`` or ``intrinsic/``
  sub-folder, an ``intrinsic.txt``, or pose files ``<number>.txt``. Id: the folder name (``scene0000_00``). Frame indices are
  the scan's frame ids (the numbers in its file names, e.g. ``00020.jpg`` -> 20).
- ``video``: any file (decoded with PyAV, first video stream). Id: the file name without its
  extension (``clip.mp4`` -> ``clip``). Frame indices are 0-based positions in decode order.
- ``frames``: a folder holding images (``.jpg .jpeg .png .bmp .webp``) that is not a scan,
  sorted numerically by the numbers in their names (``f2.png`` before ``f10.png``).
  Id: the folder name. Frame indices are 0-based positions in that order.
- A folder that is none of these but holds sub-folders or files is a collection: each entry
  in it (sorted by name, hidden ones skipped) is an input, one level deep
  (e.g. ``posed_images/`` holding one folder per scene); there, files count as videos only
  with a video extension (:data:`VIDEO_EXTENSIONS`), so split lists and notes are ignored.

Two inputs with the same id are an error (rename one). Frames are chosen uniformly with
:func:`vega3d.scenes.sample_frames` (all of them, once, when fewer exist than asked) or
listed explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vega3d.errors import Vega3DError

KINDS = ("scan", "video", "frames")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts")
SCAN_SUBFOLDERS = ("color", "depth", "pose", "intrinsic")
_POSE_FILE = re.compile(r"^\d+\.txt$")  # posed_images pose files: <frame number>.txt


@dataclass(frozen=True)
class InputItem:
    """One item to extract: its id, where it is, and what kind of input it is."""

    item_id: str
    path: Path
    kind: str


@dataclass(frozen=True)
class LoadedFrames:
    """Frames read from an input: ``frames`` (N, 3, H, W) float in [0, 1] at ``frame_indices``
    out of ``num_available``."""

    frames: torch.Tensor
    frame_indices: list[int]
    num_available: int


def _natural_key(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _image_files(folder: Path) -> list[Path]:
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: _natural_key(p.name))


def detect_kind(path: Path, in_collection: bool = False) -> str | None:
    """``"scan"``, ``"video"``, ``"frames"``, or None (a collection folder, or inside a collection a
    file that is not a video by its extension); rules in the module docstring."""
    if path.is_file():
        return "video" if not in_collection or path.suffix.lower() in VIDEO_EXTENSIONS else None
    if (
        any((path / d).is_dir() for d in SCAN_SUBFOLDERS)
        or (path / "intrinsic.txt").is_file()
        or any(_POSE_FILE.match(p.name) for p in path.glob("*.txt"))
    ):
        return "scan"
    if _image_files(path):
        return "frames"
    return None


def _item(path: Path, kind: str) -> InputItem:
    if kind not in KINDS:
        raise Vega3DError(f"extract: input kind must be one of {KINDS} or 'auto', got {kind!r}")
    if kind == "video" and not path.is_file():
        raise Vega3DError(f"extract: {path} is not a file; a video input must be a video file")
    if kind in ("scan", "frames") and not path.is_dir():
        raise Vega3DError(f"extract: {path} is not a folder; a {kind} input must be a folder")
    item_id = path.stem if kind == "video" else path.resolve().name
    return InputItem(item_id=item_id, path=path, kind=kind)


def discover_inputs(paths: Sequence[str | Path], kind: str = "auto") -> list[InputItem]:
    """The items named by ``paths`` (files, input folders or collection folders), sorted by id.

    ``kind``: "auto" (detected per path, see the module docstring) or one of :data:`KINDS`
    for every path. Raises :class:`Vega3DError` for a path that does not exist, a folder
    that holds no input, or two inputs with the same id.
    """
    items: list[InputItem] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise Vega3DError(f"extract: input {path} does not exist")
        if kind != "auto":
            items.append(_item(path, kind))
            continue
        detected = detect_kind(path)
        if detected is not None:
            items.append(_item(path, detected))
            continue
        children = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        found = [(c, detect_kind(c, in_collection=True)) for c in children]
        found = [(c, k) for c, k in found if k is not None]
        if not found:
            raise Vega3DError(
                f"extract: {path} holds no input: expected a scan folder (color/, depth/, pose/, "
                f"intrinsic/ or posed_images files), a video file, a folder of images "
                f"({'/'.join(IMAGE_EXTENSIONS)}), or a folder of those"
            )
        items.extend(_item(c, k) for c, k in found)
    by_id: dict[str, InputItem] = {}
    for it in items:
        if it.item_id in by_id:
            raise Vega3DError(
                f"extract: inputs {by_id[it.item_id].path} and {it.path} have the same item id "
                f"{it.item_id!r}; ids must be unique (rename one)"
            )
        by_id[it.item_id] = it
    if not by_id:
        raise Vega3DError("extract: no inputs given")
    return [by_id[k] for k in sorted(by_id)]


def choose_frames(num_available: int, num_frames: int | None, frames: Sequence[int] | None, where: str) -> list[int]:
    """Frame positions to read: ``frames`` verbatim (checked against ``num_available``), else
    ``sample_frames(num_available, num_frames)``."""
    from vega3d.scenes import sample_frames

    if frames is not None:
        bad = [f for f in frames if not 0 <= f < num_available]
        if bad:
            raise Vega3DError(
                f"{where}: frames {bad[:10]} out of range for {num_available} frames (0..{num_available - 1})"
            )
        return [int(f) for f in frames]
    return sample_frames(num_available, int(num_frames))


def _video_frames(path: Path, num_frames: int | None, frames: Sequence[int] | None) -> LoadedFrames:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise Vega3DError(f"{path}: no video stream (expected a video file)")
            count = sum(1 for _ in container.decode(video=0))
        if count == 0:
            raise Vega3DError(f"{path}: the video has no decodable frames")
        wanted = choose_frames(count, num_frames, frames, str(path))
        keep = set(wanted)
        images: dict[int, np.ndarray] = {}
        with av.open(str(path)) as container:
            for k, frame in enumerate(container.decode(video=0)):
                if k in keep:
                    images[k] = frame.to_ndarray(format="rgb24")
                if len(images) == len(keep):
                    break
    except av.error.FFmpegError as err:
        raise Vega3DError(f"{path}: cannot read video ({type(err).__name__}: {err})") from None
    if len(images) != len(keep):
        raise Vega3DError(
            f"{path}: decoded {count} frames at first but only {len(images)} of the wanted {len(keep)} the second time"
        )
    array = np.stack([images[k] for k in wanted])
    return LoadedFrames(_to_float(array), wanted, count)


def _folder_frames(path: Path, num_frames: int | None, frames: Sequence[int] | None) -> LoadedFrames:
    from PIL import Image, UnidentifiedImageError

    files = _image_files(path)
    if not files:
        raise Vega3DError(f"{path}: no image files ({'/'.join(IMAGE_EXTENSIONS)})")
    wanted = choose_frames(len(files), num_frames, frames, str(path))
    arrays = []
    for k in wanted:
        try:
            with Image.open(files[k]) as im:
                arrays.append(np.asarray(im.convert("RGB")))
        except (OSError, UnidentifiedImageError) as err:
            raise Vega3DError(f"{files[k]}: cannot read image ({err})") from None
        if arrays[-1].shape != arrays[0].shape:
            raise Vega3DError(
                f"{files[k]}: image is {arrays[-1].shape[1]}x{arrays[-1].shape[0]}, but "
                f"{files[wanted[0]].name} is {arrays[0].shape[1]}x{arrays[0].shape[0]}; "
                "expected one size for all frames"
            )
    return LoadedFrames(_to_float(np.stack(arrays)), wanted, len(files))


def _scan_frames(path: Path, num_frames: int | None, frames: Sequence[int] | None) -> LoadedFrames:
    from vega3d.scenes import load_scene

    scene = load_scene(path, frames=list(frames) if frames is not None else int(num_frames))
    return LoadedFrames(scene.frames(), list(scene.frame_ids), int(scene.extras["num_available_frames"]))


def _to_float(array: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(array).permute(0, 3, 1, 2).float().div_(255.0)


def load_frames(item: InputItem, num_frames: int | None = 32, frames: Sequence[int] | None = None) -> LoadedFrames:
    """Read ``item``'s frames: ``frames`` (explicit indices, see the module docstring for what
    they index per kind) or ``num_frames`` chosen uniformly. Raises :class:`Vega3DError` naming
    the file when the input cannot be read."""
    if frames is None and (num_frames is None or int(num_frames) < 1):
        raise Vega3DError(f"extract: num_frames must be >= 1, got {num_frames!r}")
    if frames is not None and (len(frames) == 0 or len(set(frames)) != len(frames)):
        raise Vega3DError(f"extract: explicit frames must be a non-empty list without repeats, got {list(frames)}")
    reader = {"scan": _scan_frames, "video": _video_frames, "frames": _folder_frames}[item.kind]
    return reader(item.path, num_frames, frames)
