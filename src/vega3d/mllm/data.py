"""LLaVA-style conversation data with videos / frame folders / images.

The annotation file is a JSON list (the format SPAR, LLaVA-Hound and Video-3D LLM use)::

    [{"id": "scene0000_00_q1",
      "video": "scans/scene0000_00.mp4"        # a video file (PyAV) or a folder of frames
      # or "image": "imgs/0001.jpg",
      "conversations": [{"from": "human", "value": "<video>\\nHow many chairs?"},
                        {"from": "gpt", "value": "Three."}]}]

Relative paths resolve against ``media_root`` (default: the annotation file's folder).
Videos are sampled uniformly (:func:`vega3d.scenes.sample_frames`, ``num_frames``, 32 by
default); with a feature store the frames are the ones whose features are stored.

A record that cannot be loaded raises :class:`Vega3DError` naming the record id, its index
and the file. With ``skip_bad_records=True`` the dataset returns ``None`` for it instead
and :func:`collate` drops it and counts it (``batch["num_skipped"]``); a bad record is never
replaced by another sample.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vega3d.errors import Vega3DError
from vega3d.files import read_json
from vega3d.mllm.processing import IGNORE_INDEX, Vega3DProcessor, llava_to_messages

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def list_frame_files(folder: Path) -> list[Path]:
    """Image files of a frame folder in natural order (frame2 before frame10)."""
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key)
    if not files:
        raise Vega3DError(f"{folder}: frame folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def count_video_frames(path: Path) -> tuple[int, float | None]:
    """(number of frames, fps) of a video file or frame folder (fps None for folders)."""
    if path.is_dir():
        return len(list_frame_files(path)), None
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else None
            n = sum(1 for p in container.demux(stream) if p.size)  # exact, no decoding
    except (av.FFmpegError, IndexError, OSError) as exc:
        raise Vega3DError(f"{path}: cannot read video ({type(exc).__name__}: {exc})") from exc
    if n < 1:
        raise Vega3DError(f"{path}: video has no frames")
    return int(n), fps


def read_frames(path, indices: list[int]) -> np.ndarray:
    """Frames ``indices`` (sorted, 0-based) of a video file or frame folder → (N,H,W,3) uint8."""
    from PIL import Image

    path = Path(path)
    if not path.exists():
        raise Vega3DError(f"{path}: no such video file or frame folder")
    if path.is_dir():
        files = list_frame_files(path)
        if max(indices) >= len(files):
            raise Vega3DError(f"{path}: asked for frame {max(indices)} but the folder has {len(files)} frames")
        frames = []
        for i in indices:
            try:
                with Image.open(files[i]) as im:
                    frames.append(np.asarray(im.convert("RGB")))
            except OSError as exc:
                raise Vega3DError(f"{files[i]}: cannot read image ({exc})") from exc
        if len({f.shape for f in frames}) != 1:
            raise Vega3DError(f"{path}: frames have different sizes {sorted({f.shape for f in frames})}")
        return np.stack(frames)
    import av

    wanted = set(int(i) for i in indices)
    frames = {}
    try:
        with av.open(str(path)) as container:
            container.streams.video[0].thread_type = "AUTO"  # frame-threaded decoding
            for k, frame in enumerate(container.decode(video=0)):
                if k in wanted:
                    frames[k] = frame.to_ndarray(format="rgb24")
                if k >= max(wanted):
                    break
    except (av.FFmpegError, OSError) as exc:
        raise Vega3DError(f"{path}: cannot decode video ({exc})") from exc
    if len(frames) != len(wanted):
        raise Vega3DError(f"{path}: decoded {len(frames)} of the {len(wanted)} requested frames (video shorter?)")
    return np.stack([frames[i] for i in sorted(wanted)])


def seconds_per_grid(
    total: int, fps: float | None, num_sampled: int, frame_fps: float, temporal_patch: int = 2
) -> float:
    """Seconds covered by one temporal patch (``temporal_patch`` sampled frames), Qwen2.5-VL's
    ``second_per_grid_ts``: from the video's fps, or ``frame_fps`` for frame folders."""
    duration = total / (fps if fps else frame_fps)
    return float(temporal_patch * duration / num_sampled)


def is_scan_folder(path: Path) -> bool:
    """A ScanNet-style scan (SensReader or posed_images layout: colour + depth + poses), by
    the same rule ``vega3d extract`` uses — its depth PNGs must not be read as frames."""
    from vega3d.store.inputs import detect_kind

    return path.is_dir() and detect_kind(path) == "scan"


def load_video(path, num_frames: int, frame_fps: float = 1.0, temporal_patch: int = 2):
    """Uniformly sampled frames of a video file, frame folder or scan folder:
    ``(frames (N,H,W,3) uint8, indices, second_per_grid_ts)``.

    ``indices`` are frame positions (0-based) for videos and frame folders, and the scan's
    frame ids for scan folders — the keys ``vega3d extract`` stores features under. Scan
    frames are read with :func:`vega3d.scenes.load_scene` (colour only is used)."""
    from vega3d.scenes import load_scene, sample_frames

    path = Path(path)
    if not path.exists():
        raise Vega3DError(f"{path}: video file, frame folder or scan folder not found")
    if is_scan_folder(path):
        scene = load_scene(path, frames=int(num_frames))
        total = int(scene.extras["num_available_frames"])
        frames = np.ascontiguousarray(np.asarray(scene.color))
        return frames, list(scene.frame_ids), seconds_per_grid(total, None, len(frames), frame_fps, temporal_patch)
    total, fps = count_video_frames(path)
    indices = sample_frames(total, num_frames)
    return read_frames(path, indices), indices, seconds_per_grid(total, fps, len(indices), frame_fps, temporal_patch)


@dataclass(frozen=True)
class DataConfig:
    """Where the data is and how it is sampled.

    ``annotations``: the JSON file; ``media_root``: base of relative media paths ("" = the
    annotation file's folder); ``num_frames``: frames per video (uniform); ``frame_fps``:
    the frame rate assumed for frame folders (for Qwen's temporal RoPE spacing);
    ``video_min_pixels`` / ``video_max_pixels``: per-frame pixel budget of the processor;
    ``feature_store``: a FeatureStore folder with precomputed generative features (else
    the simulator computes them online); ``store_key``: the store's item id for a record:
    "video_name" (the video file's stem or the frame folder's name — the ids ``vega3d
    extract`` writes) or "id" (the record's id); ``max_tokens``: a record longer than this
    (text + visual tokens) is a bad record (never truncated: that would cut visual tokens);
    ``skip_bad_records``: see the module docstring."""

    annotations: str
    media_root: str = ""
    num_frames: int = 32
    frame_fps: float = 1.0
    video_min_pixels: int = 128 * 28 * 28
    video_max_pixels: int = 768 * 28 * 28
    feature_store: str | None = None
    store_key: str = "video_name"
    max_tokens: int | None = None
    skip_bad_records: bool = False

    def __post_init__(self):
        from vega3d.mllm.fields import above, at_least, check_fields, one_of

        check_fields(
            self,
            "data",
            {
                "num_frames": at_least(1),
                "frame_fps": above(0),
                "video_min_pixels": at_least(1),
                "video_max_pixels": at_least(1),
                "store_key": one_of("video_name", "id"),
                "max_tokens": at_least(1),
            },
        )
        if not self.annotations:
            raise Vega3DError("data.annotations: expected the path of a JSON file, got an empty string")
        if self.video_max_pixels < self.video_min_pixels:
            raise Vega3DError(
                f"data.video_max_pixels: expected >= data.video_min_pixels ({self.video_min_pixels}), "
                f"got {self.video_max_pixels}"
            )


def load_annotations(path) -> list[dict]:
    """The JSON list of records, each checked for ``id`` and ``conversations``."""
    path = Path(path)
    if not path.is_file():
        raise Vega3DError(f"{path}: annotation file not found")
    records = read_json(path, "training annotations")
    if not isinstance(records, list) or not records:
        raise Vega3DError(f"{path}: expected a non-empty JSON list of records, got {type(records).__name__}")
    for i, r in enumerate(records):
        if not isinstance(r, dict) or "conversations" not in r or "id" not in r:
            raise Vega3DError(
                f"{path}: record #{i} must be an object with 'id' and 'conversations', got {str(r)[:200]}"
            )
    return records


class ConversationDataset(torch.utils.data.Dataset):
    """Items: tokenised conversation + Qwen visual inputs + frames or stored features."""

    def __init__(self, config: DataConfig, processor: Vega3DProcessor, need_frames: bool = True):
        self.config = config
        self.processor = processor
        self.need_frames = need_frames
        self.path = Path(config.annotations)
        self.records = load_annotations(self.path)
        self.root = Path(config.media_root) if config.media_root else self.path.parent
        self.store = None
        if config.feature_store:
            from vega3d.store import FeatureStore

            self.store = FeatureStore(config.feature_store)
        if config.store_key not in ("id", "video_name"):
            raise Vega3DError(f"data.store_key: expected 'video_name' or 'id', got {config.store_key!r}")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        record = self.records[index]
        try:
            return self.load(record)
        except Vega3DError as exc:
            if self.config.skip_bad_records:
                return None
            raise Vega3DError(f"record {record.get('id')!r} (#{index}) of {self.path}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - any failure to load is reported with the record
            if self.config.skip_bad_records:
                return None
            raise Vega3DError(
                f"record {record.get('id')!r} (#{index}) of {self.path}: {type(exc).__name__}: {exc}"
            ) from exc

    def load(self, record: dict) -> dict:
        name = f"record {record['id']!r}"
        messages = llava_to_messages(record["conversations"], name)
        item = {"id": str(record["id"])}
        if "video" in record:
            item.update(self._video(record))
        if "image" in record:
            item.update(self._image(record))
        enc = self.processor.encode(messages, item.get("video_grid_thw"), item.get("image_grid_thw"))
        if not (enc["labels"] != IGNORE_INDEX).any():
            raise Vega3DError(f"{name}: no assistant ('gpt') turn to learn from")
        if self.config.max_tokens is not None and len(enc["input_ids"]) > self.config.max_tokens:
            raise Vega3DError(
                f"{name}: {len(enc['input_ids'])} tokens (text + visual) exceed data.max_tokens={self.config.max_tokens}"
            )
        item.update(enc)
        return item

    def _media(self, record, key) -> Path:
        value = record[key]
        if not isinstance(value, str) or not value:
            raise Vega3DError(f"'{key}' must be a path string, got {value!r}")
        path = Path(value)
        return path if path.is_absolute() else self.root / path

    def _video(self, record) -> dict:
        path = self._media(record, "video")
        tp = int(self.processor.image_processor.temporal_patch_size)
        frames, indices, spg = load_video(path, self.config.num_frames, self.config.frame_fps, tp)
        out = {"second_per_grid_ts": spg}  # Qwen's temporal RoPE spacing
        if self.store is not None:
            key = str(record["id"]) if self.config.store_key == "id" else (path.name if path.is_dir() else path.stem)
            features, stored = self.store.get(key, indices)
            if list(stored) != list(indices):
                raise Vega3DError(f"feature store returned frames {stored}, expected {indices}")
            out["video_features"] = features
        out.update(self.processor.video_inputs(frames))
        if self.store is None and self.need_frames:
            out["video_frames"] = torch.from_numpy(frames)
        return out

    def _image(self, record) -> dict:
        from PIL import Image

        path = self._media(record, "image")
        try:
            with Image.open(path) as im:
                image = np.array(im.convert("RGB"))
        except OSError as exc:
            raise Vega3DError(f"{path}: cannot read image ({exc})") from exc
        out = self.processor.image_inputs(image)
        if self.store is not None:
            key = str(record["id"]) if self.config.store_key == "id" else path.stem
            out["image_features"] = self.store.get(key, [0])[0]
        elif self.need_frames:
            out["image_frames"] = torch.from_numpy(image[None])
        return out


def collate(items: list, pad_token_id: int, padding_side: str = "right") -> dict:
    """Batch dataset items: pad text (``labels`` with -100), concatenate visual inputs in
    batch order, keep per-item frames / features as lists. ``None`` items (skipped bad
    records) are dropped and counted in ``num_skipped``."""
    kept = [it for it in items if it is not None]
    batch = {"num_skipped": len(items) - len(kept), "ids": [it["id"] for it in kept]}
    if not kept:
        return batch
    length = max(len(it["input_ids"]) for it in kept)

    def pad(key, value):
        rows = []
        for it in kept:
            x = it[key] if key != "attention_mask" else torch.ones_like(it["input_ids"])
            fill = torch.full((length - len(x),), value, dtype=x.dtype)
            rows.append(torch.cat([x, fill]) if padding_side == "right" else torch.cat([fill, x]))
        return torch.stack(rows)

    batch["input_ids"] = pad("input_ids", pad_token_id)
    batch["labels"] = pad("labels", IGNORE_INDEX)
    batch["mm_token_type_ids"] = pad("mm_token_type_ids", 0)
    batch["attention_mask"] = pad("attention_mask", 0)
    for kind, pixels, thw in (
        ("video", "pixel_values_videos", "video_grid_thw"),
        ("image", "pixel_values", "image_grid_thw"),
    ):
        with_kind = [it for it in kept if pixels in it]
        if not with_kind:
            continue
        batch[pixels] = torch.cat([it[pixels] for it in with_kind])
        batch[thw] = torch.cat([it[thw] for it in with_kind])
        for extra in (f"{kind}_frames", f"{kind}_features"):
            if all(extra in it for it in with_kind):
                batch[extra] = [it[extra] for it in with_kind]
    videos = [it for it in kept if "second_per_grid_ts" in it]
    if videos:
        batch["second_per_grid_ts"] = torch.tensor([it["second_per_grid_ts"] for it in videos])
    return batch


MODEL_INPUTS = (
    "input_ids",
    "attention_mask",
    "labels",
    "mm_token_type_ids",
    "pixel_values_videos",
    "video_grid_thw",
    "second_per_grid_ts",
    "video_features",
    "video_frames",
    "pixel_values",
    "image_grid_thw",
    "image_features",
    "image_frames",
)


def to_device(batch: dict, device, float_dtype=None) -> dict:
    """Model inputs of ``batch`` on ``device`` (frames stay on CPU for the simulator)."""
    out = {}
    for key in MODEL_INPUTS:
        if key not in batch:
            continue
        value = batch[key]
        if key.endswith("_frames"):
            out[key] = value
        elif isinstance(value, list):
            out[key] = [v.to(device) for v in value]
        else:
            value = value.to(device)
            if float_dtype is not None and key in ("pixel_values_videos", "pixel_values"):
                value = value.to(float_dtype)
            out[key] = value
    return out
