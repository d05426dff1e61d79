"""What ``vega3d extract`` reads: scan folders, videos and frame folders, each one item.

The kinds, the frame-count rule and the reading are :mod:`vega3d.media`'s (the one reader the
MLLM data and the eval runners use too); this module adds what is the store's own: finding the
items of a command line (collections), their ids, and the frame choice. Kinds and item ids
(deterministic, independent of where the data lives):

- ``scan``: a ScanNet SensReader or ``posed_images`` folder (:func:`vega3d.scenes.load_scene`).
  A folder is a scan when it has a ``color/``, ``depth/``, ``pose/`` or ``intrinsic/``
  sub-folder, an ``intrinsic.txt``, or pose files ``<number>.txt``. Id: the folder name
  (``scene0000_00``). Frame indices are the scan's frame ids (the numbers in its file names,
  e.g. ``00020.jpg`` -> 20).
- ``video``: any file (decoded with PyAV, first video stream; as many frames as it decodes
  to). Id: the file name without its extension (``clip.mp4`` -> ``clip``). Frame indices are
  0-based positions in decode order.
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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from vega3d.errors import Vega3DError
from vega3d.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, load_media, media_kind  # noqa: F401 - re-exported

KINDS = ("scan", "video", "frames")


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


def detect_kind(path: Path, in_collection: bool = False) -> str | None:
    """``"scan"``, ``"video"``, ``"frames"``, or None (a collection folder, or inside a collection a
    file that is not a video by its extension): :func:`vega3d.media.media_kind`."""
    return media_kind(path, videos_by_extension=in_collection)


def _item(path: Path, kind: str) -> InputItem:
    if kind not in KINDS:
        raise Vega3DError(f"extract: input kind must be one of {KINDS} or 'auto', got {kind!r}")
    if (kind == "video") != path.is_file():
        expected = "a video file" if kind == "video" else "a folder"
        raise Vega3DError(f"extract: {path} is not {expected}; a {kind} input must be {expected}")
    item_id = path.stem if kind == "video" else path.resolve().name
    return InputItem(item_id=item_id, path=path, kind=kind)


def _collection(path: Path) -> list[InputItem]:
    """The inputs inside a collection folder (one level deep, hidden entries skipped)."""
    children = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    found = [(c, detect_kind(c, in_collection=True)) for c in children]
    items = [_item(c, k) for c, k in found if k is not None]
    if not items:
        raise Vega3DError(
            f"extract: {path} holds no input: expected a scan folder (color/, depth/, pose/, "
            f"intrinsic/ or posed_images files), a video file, a folder of images "
            f"({'/'.join(IMAGE_EXTENSIONS)}), or a folder of those"
        )
    return items


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
        detected = kind if kind != "auto" else detect_kind(path)
        items.extend([_item(path, detected)] if detected is not None else _collection(path))
    by_id: dict[str, InputItem] = {}
    for it in items:
        if it.item_id in by_id:
            raise Vega3DError(
                f"extract: inputs {by_id[it.item_id].path} and {it.path} have the same item id "
                f"{it.item_id!r}; ids must be unique (rename one)"
            )
        by_id[it.item_id] = it
    return [by_id[k] for k in sorted(by_id)]


def check_selection(num_frames: int | None, frames: Sequence[int] | None) -> None:
    """The frame choice of an extraction: ``num_frames`` an int >= 1, or ``frames`` a non-empty
    list of indices without repeats (each is one entry of the store)."""
    if frames is None and (isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1):
        raise Vega3DError(f"extract: num_frames must be an int >= 1, got {num_frames!r}")
    if frames is not None and (len(frames) == 0 or len(set(frames)) != len(frames)):
        raise Vega3DError(f"extract: explicit frames must be a non-empty list without repeats, got {list(frames)}")


def load_frames(item: InputItem, num_frames: int | None = 32, frames: Sequence[int] | None = None) -> LoadedFrames:
    """Read ``item``'s frames (:func:`vega3d.media.load_media` as ``item.kind``): ``frames``
    (explicit indices, see the module docstring for what they index per kind) or ``num_frames``
    chosen uniformly. Raises :class:`Vega3DError` naming the file when the input cannot be read."""
    media = load_media(item.path, None if frames is not None else num_frames, frames, kind=item.kind)
    x = torch.from_numpy(media.frames).permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, H, W) in [0, 1]
    return LoadedFrames(x, media.indices, media.total)
