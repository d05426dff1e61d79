"""Reading media: video files, frame folders and scan folders — one reader for the whole package.

The feature store (``vega3d extract``), the MLLM training data and the eval runners all read
frames here, so a stored feature's frame index and the pixels a model sees are the same frame.

Kinds (:func:`media_kind`):

- ``"scan"``: a ScanNet SensReader or ``posed_images`` folder — a ``color/``, ``depth/``,
  ``pose/`` or ``intrinsic/`` sub-folder, an ``intrinsic.txt``, or pose files
  ``<number>.txt``; read with :func:`vega3d.scenes.load_scene` (colour only here). Frame
  indices are the scan's frame ids (the numbers in its file names, ``00020.jpg`` → 20).
- ``"frames"``: any other folder holding images (:data:`IMAGE_EXTENSIONS`), in natural order
  of their names (``f2.png`` before ``f10.png``). Frame indices are 0-based positions.
- ``"video"``: a file, decoded with PyAV (first video stream). Frame indices are 0-based
  positions in decode order.

The frame-count rule: a video has as many frames as its decoder yields (not what the container
header or the packet count claims); :func:`count_frames` decodes once per file and remembers
the count for that file's size and modification time.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vega3d.errors import Vega3DError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts")
SCAN_SUBFOLDERS = ("color", "depth", "pose", "intrinsic")
_POSE_FILE = re.compile(r"^\d+\.txt$")  # posed_images pose files: <frame number>.txt


@dataclass(frozen=True)
class Media:
    """Frames read from one video, frame folder or scan: ``frames`` (N, H, W, 3) uint8 at
    ``indices`` (see the module docstring for what they index) out of ``total``; ``fps`` of a
    video file (None for folders)."""

    frames: np.ndarray
    indices: list[int]
    total: int
    fps: float | None = None


def natural_key(name: str) -> tuple:
    """Sort key that orders the numbers inside names by value (``f2`` before ``f10``)."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t)


def list_frames(folder) -> list[Path]:
    """The image files of a frame folder in natural order (hidden files skipped; may be empty)."""
    files = [p for p in Path(folder).iterdir()
             if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")]  # fmt: skip
    return sorted(files, key=lambda p: natural_key(p.name))


def is_scan_folder(path) -> bool:
    """True for a ScanNet-style scan folder (the rule in the module docstring)."""
    path = Path(path)
    return path.is_dir() and (
        any((path / d).is_dir() for d in SCAN_SUBFOLDERS)
        or (path / "intrinsic.txt").is_file()
        or any(_POSE_FILE.match(p.name) for p in path.glob("*.txt"))
    )


def media_kind(path, *, videos_by_extension: bool = False) -> str | None:
    """``"scan"``, ``"frames"``, ``"video"`` or None (a folder with neither; with
    ``videos_by_extension`` also a file without a :data:`VIDEO_EXTENSIONS` extension)."""
    path = Path(path)
    if path.is_file():
        return "video" if not videos_by_extension or path.suffix.lower() in VIDEO_EXTENSIONS else None
    if is_scan_folder(path):
        return "scan"
    return "frames" if path.is_dir() and list_frames(path) else None


def count_frames(path) -> int:
    """Frames of a video file (decoded, the module's rule) or images of a frame folder (>= 1)."""
    path = Path(path)
    if not path.exists():
        raise Vega3DError(f"{path}: no such video file, frame folder or scan folder")
    if path.is_dir():
        n = len(list_frames(path))
        if n == 0:
            raise Vega3DError(f"{path}: frame folder holds no images ({'/'.join(IMAGE_EXTENSIONS)})")
        return n
    stat = path.stat()
    return _video_info(str(path.resolve()), stat.st_size, stat.st_mtime_ns)[0]


def video_fps(path) -> float | None:
    """The average frame rate of a video file; None for a frame folder or a video without one."""
    path = Path(path)
    if path.is_dir():
        return None
    stat = path.stat()
    return _video_info(str(path.resolve()), stat.st_size, stat.st_mtime_ns)[1]


@functools.lru_cache(maxsize=4096)
def _video_info(path: str, size: int, mtime_ns: int) -> tuple[int, float | None]:
    """``(decoded frames, fps)``; the size and mtime make the cache forget a replaced file."""
    av = _av()
    count, fps = 0, None
    try:
        with av.open(path) as container:
            for stream in container.streams.video[:1]:
                stream.thread_type = "AUTO"
                fps = float(stream.average_rate) if stream.average_rate else None
                count = sum(1 for _ in container.decode(stream))
    except av.error.FFmpegError as err:
        raise Vega3DError(f"{path}: cannot read video ({type(err).__name__}: {err})") from None
    if count == 0:
        raise Vega3DError(f"{path}: no decodable video frames (expected a video file with a video stream)")
    return count, fps


def read_frames(path, indices) -> np.ndarray:
    """Frames ``indices`` (0-based positions, any order, repeats allowed) of a video file or frame
    folder as (N, H, W, 3) uint8 RGB, in the order asked. Every frame must have one size."""
    path = Path(path)
    indices = [int(i) for i in indices]
    total = count_frames(path)
    bad = [i for i in indices if not 0 <= i < total]
    if not indices or bad:
        raise Vega3DError(
            f"{path}: frames {bad[:10] or '[]'} out of range for {total} frames; expected positions in 0..{total - 1}"
        )
    images = _read_folder(path, indices) if path.is_dir() else _read_video(path, set(indices))
    return np.stack([images[i] for i in indices])


def _read_folder(folder: Path, indices: list[int]) -> dict[int, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    files = list_frames(folder)
    images: dict[int, np.ndarray] = {}
    for i in sorted(set(indices)):
        try:
            with Image.open(files[i]) as im:
                images[i] = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as err:
            raise Vega3DError(f"{files[i]}: cannot read image ({err})") from None
        first = min(images)
        (h, w), (h0, w0) = images[i].shape[:2], images[first].shape[:2]
        if (h, w) != (h0, w0):
            raise Vega3DError(
                f"{files[i]}: image is {w}x{h}, but {files[first].name} is {w0}x{h0}; expected one size for all frames"
            )
    return images


def _read_video(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    images = {}
    with _av().open(str(path)) as container:  # decoded once already by count_frames
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for k, frame in enumerate(container.decode(stream)):
            if k in wanted:
                images[k] = frame.to_ndarray(format="rgb24")
                if len(images) == len(wanted):
                    break
    assert len(images) == len(wanted), f"{path}: decoded {len(images)} of {len(wanted)} frames (changed meanwhile?)"
    shapes = sorted({im.shape for im in images.values()})
    if len(shapes) != 1:
        raise Vega3DError(f"{path}: frames have different sizes {shapes}; expected one size for all frames")
    return images


def load_media(path, num_frames: int | None = None, indices=None, kind: str | None = None) -> Media:
    """Read a video file, frame folder or scan folder: the explicit ``indices`` (what they index:
    the module docstring), else ``num_frames`` chosen uniformly (:func:`vega3d.scenes.sample_frames`:
    every frame once when fewer exist). ``kind`` ("scan", "frames" or "video") reads ``path`` as
    that kind; default: a scan folder by :func:`is_scan_folder`, else a frame folder or video."""
    from vega3d.scenes import load_scene, sample_frames

    path = Path(path)
    assert (indices is None) != (num_frames is None), "pass either num_frames or indices"
    if kind == "scan" or (kind is None and is_scan_folder(path)):
        scene = load_scene(path, frames=list(indices) if indices is not None else int(num_frames))
        frames = np.ascontiguousarray(np.asarray(scene.color))
        return Media(frames, [int(i) for i in scene.frame_ids], int(scene.extras["num_available_frames"]))
    total = count_frames(path)
    chosen = [int(i) for i in indices] if indices is not None else sample_frames(total, int(num_frames))
    return Media(read_frames(path, chosen), chosen, total, video_fps(path))


def write_video(path, frames: np.ndarray, fps: int = 4) -> Path:
    """Frames (N, H, W, 3) uint8 → an MPEG-4 video file via PyAV (for tests, demos, benchmarks)."""
    av = _av()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = "yuv420p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        container.mux(stream.encode())
    return path


def write_frame_folder(folder, frames: np.ndarray, pattern: str = "frame_{}.png") -> Path:
    """Frames (N, H, W, 3) uint8 → ``folder/frame_0.png`` ... (for tests, demos, benchmarks)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / pattern.format(i))
    return folder


def _av():
    try:
        import av
    except ImportError:
        raise Vega3DError("reading or writing video files needs PyAV: pip install 'vega3d[video]'") from None
    return av
