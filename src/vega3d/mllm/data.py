"""LLaVA-style conversation data with videos / frame folders / images.

The annotation file is a JSON list (the format SPAR, LLaVA-Hound and Video-3D LLM use)::

    [{"id": "scene0000_00_q1",
      "video": "scans/scene0000_00.mp4"        # a video file (PyAV) or a folder of frames
      # or "image": "imgs/0001.jpg" -- or a list of paths, or SPAR's "images": [...]
      "conversations": [{"from": "human", "value": "<video>\\nHow many chairs?"},
                        {"from": "gpt", "value": "Three."}]}]

A record's images (:func:`record_media`) are one ``<image>`` placeholder each, in order (the processor
checks the placeholders against the inputs); a feature store keys one image per record, so a list is
refused with one.
Relative paths resolve against ``media_root`` (default: the annotation file's folder).
Videos are sampled uniformly (:func:`vega3d.scenes.sample_frames`, ``num_frames``, 32 by
default); with a feature store the frames are the ones whose features are stored.

Frames as images. With ``frames_as="images"`` a video's sampled frames become N images, as the
released VEGA-3D spatial model trains (its ``read_video_images``): each frame prepared as the release
does (:func:`vega3d.mllm.release.frames.release_image_inputs`), the record's video item replaced by N
image items (:func:`vega3d.mllm.processing.video_as_images`, as :class:`vega3d.mllm.infer.Answerer`
builds its prompt), one ``<|image_pad|>`` block each, and one prepared frame per image for the
simulator (``image_frames``). Features from a store are of the whole sampled frames, not of the
prepared ones: :class:`DataConfig` refuses the two together.

A record that cannot be loaded raises :class:`Vega3DError` naming the record id, its index
and the file. With ``skip_bad_records=True`` the dataset returns ``None`` for it instead
and :func:`collate` drops it and counts it (``batch["num_skipped"]``); a bad record is never
replaced by another sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from vega3d.config import Config, FileRecord, Float
from vega3d.errors import Vega3DError
from vega3d.files import read_json
from vega3d.media import count_frames, is_scan_folder, load_media
from vega3d.mllm.processing import IGNORE_INDEX, Vega3DProcessor, llava_to_messages, video_as_images

#: The frames a feature store holds, per data field: the field's default, and why no other value fits.
STORE_ONLY_HOLDS = {
    "frames_as": ("video", "stored features are of the whole sampled frames, not of the frames prepared as images"),
    "video_frames": ("fixed", "a store holds the num_frames frames `vega3d extract` sampled, not the release's count"),
}


class DataConfig(Config):
    """Where the training data is and how it is sampled (see :mod:`vega3d.mllm.data`)."""

    annotations: str = Field(min_length=1)  # the LLaVA-style JSON list of records
    media_root: str = ""  # base of relative media paths ("" = the annotation file's folder)
    num_frames: int = Field(32, ge=1)  # frames per video, sampled uniformly
    frame_fps: Float = Field(1.0, gt=0)  # frame rate assumed for frame folders (Qwen's temporal RoPE spacing)
    video_min_pixels: int = Field(128 * 28 * 28, ge=1)  # per-frame pixel budget of the processor: lower bound
    video_max_pixels: int = Field(768 * 28 * 28, ge=1)  # ... and upper bound (>= video_min_pixels)
    feature_store: str | None = None  # a FeatureStore folder of precomputed features (else: the simulator online)
    store_key: Literal["video_name", "id"] = "video_name"  # store item of a record: video stem/folder name, or its id
    frames_as: Literal["video", "images"] = "video"  # a video's frames as one Qwen video, or as the release's N images
    video_frames: Literal["fixed", "release"] = "fixed"  # frames per video: num_frames, or round(n/2) in 4..8 (release)
    max_tokens: int | None = Field(None, ge=1)  # a longer record (text + visual tokens) is bad; never truncated
    skip_bad_records: bool = False  # drop (and count) records that fail to load instead of stopping

    @field_validator("video_max_pixels")
    @classmethod
    def _budget(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("video_min_pixels")
        if low is not None and value < low:
            raise PydanticCustomError("budget", "expected >= data.video_min_pixels ({low})", {"low": low})
        return value

    @field_validator("frames_as", "video_frames")
    @classmethod
    def _frames_a_store_holds(cls, value: str, info: ValidationInfo) -> str:
        default, why = STORE_ONLY_HOLDS[info.field_name]
        if value != default and info.data.get("feature_store"):
            raise PydanticCustomError(
                info.field_name, "expected '{default}' with data.feature_store ({why}: use the simulator section)",
                {"default": default, "why": why},
            )  # fmt: skip
        return value


def release_frame_indices(total: int) -> list[int]:
    """The frames the release reads of a ``total``-frame video or frame folder (LLaVA-Hound; docs/mllm.md):
    k = round(total/2) (Python's rounding, half to even) clamped to [4, 8], at
    ``np.linspace(0, total - 1, k)`` truncated to int — repeated frames when total < k."""
    count = min(max(round(total / 2), 4), 8)
    return np.linspace(0, total - 1, count).astype(int).tolist()


def seconds_per_grid(
    total: int, fps: float | None, num_sampled: int, frame_fps: float, temporal_patch: int = 2
) -> float:
    """Seconds covered by one temporal patch (``temporal_patch`` sampled frames), Qwen2.5-VL's
    ``second_per_grid_ts``: from the video's fps, or ``frame_fps`` for frame and scan folders."""
    duration = total / (fps if fps else frame_fps)
    return float(temporal_patch * duration / num_sampled)


def load_video(path, num_frames: int, frame_fps: float = 1.0, temporal_patch: int = 2, video_frames: str = "fixed"):
    """Uniformly sampled frames of a video file, frame folder or scan folder
    (:func:`vega3d.media.load_media`): ``(frames (N,H,W,3) uint8, indices, second_per_grid_ts)``.
    ``video_frames="release"``: the release's frames (:func:`release_frame_indices`) instead of
    ``num_frames``, for videos and frame folders.

    ``indices`` are what :mod:`vega3d.media` indexes — frame positions for videos and frame
    folders, frame ids for scans: the keys ``vega3d extract`` stores features under."""
    if video_frames == "release":
        if is_scan_folder(path):
            raise Vega3DError(f"{path}: data.video_frames: release reads videos and frame folders, not scan folders")
        media = load_media(path, indices=release_frame_indices(count_frames(path)))
    else:
        media = load_media(path, num_frames=num_frames)
    spg = seconds_per_grid(media.total, media.fps, len(media.indices), frame_fps, temporal_patch)
    return media.frames, media.indices, spg


def load_annotations(path) -> list[dict]:
    """The JSON list of records, each checked for ``id`` and ``conversations``."""
    records = read_json(path, "training annotations")
    records = records if isinstance(records, list) else None
    bad = next(
        (i for i, r in enumerate(records or []) if not (isinstance(r, dict) and {"id", "conversations"} <= set(r))),
        None,
    )
    if not records or bad is not None:
        got = f"record #{bad}: {str(records[bad])[:200]}" if bad is not None else "an empty list or another value"
        raise Vega3DError(
            f"{path}: expected a non-empty JSON list of records, each an object with 'id' and 'conversations'; got {got}"
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

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        record = self.records[index]
        where = f"record {record.get('id')!r} (#{index}) of {self.path}"
        return load_or_skip(self.load, record, self.config.skip_bad_records, where)

    def load(self, record: dict) -> dict:
        name = f"record {record['id']!r}"
        messages = llava_to_messages(record["conversations"], name)
        video, images = record_media(record, self.config.frames_as)
        item = {"id": str(record["id"])}
        if video is not None:
            item.update(self._video(record, video))
        if images:
            item.update(self._images(record, images))
        if video is not None and self.config.frames_as == "images":
            messages = video_as_images(messages, len(item["image_grid_thw"]))
        enc = self.processor.encode(messages, item.get("video_grid_thw"), item.get("image_grid_thw"))
        tokens, answer, most = len(enc["input_ids"]), int((enc["labels"] != IGNORE_INDEX).sum()), self.config.max_tokens
        if not answer or (most is not None and tokens > most):
            raise Vega3DError(
                f"{name}: {tokens} tokens (text + visual), {answer} of them in assistant ('gpt') turns; expected "
                f"an assistant turn to learn from{'' if most is None else f' and at most data.max_tokens={most}'}"
            )
        item.update(enc)
        return item

    def _media(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.root / path

    def _video(self, record, video: str) -> dict:
        path = self._media(video)
        tp = int(self.processor.image_processor.temporal_patch_size)
        frames, indices, spg = load_video(
            path, self.config.num_frames, self.config.frame_fps, tp, self.config.video_frames
        )
        if self.config.frames_as == "images":
            return self._frames_as_images(frames)
        out = {"second_per_grid_ts": spg}  # Qwen's temporal RoPE spacing
        if self.store is not None:
            key = str(record["id"]) if self.config.store_key == "id" else (path.name if path.is_dir() else path.stem)
            features, stored = self.store.get(key, indices)
            assert list(stored) == list(indices), (stored, indices)  # one frame-count rule: vega3d.media
            out["video_features"] = features
        out.update(self.processor.video_inputs(frames))
        if self.store is None and self.need_frames:
            out["video_frames"] = torch.from_numpy(frames)
        return out

    def _frames_as_images(self, frames: np.ndarray) -> dict:
        """The sampled frames as the release's images: their pixels and one prepared frame per image."""
        from vega3d.mllm.release.frames import release_image_inputs

        images, out = release_image_inputs(self.processor, frames)
        if self.need_frames:
            out["image_frames"] = list(torch.from_numpy(images).split(1))
        return out

    def _images(self, record, paths: list[str]) -> dict:
        """A record's images, one ``<|image_pad|>`` block each in order: Qwen's image processor on each
        as it is, or (``data.frames_as: images``) each prepared as the release's images; one frame per
        image for the simulator (``image_frames``), or one stored grid."""
        from vega3d.mllm.release.frames import release_image_inputs

        images = [read_image(self._media(p)) for p in paths]
        if self.config.frames_as == "images":
            prepared, inputs = zip(*(release_image_inputs(self.processor, image[None]) for image in images))
            frames = [torch.from_numpy(p) for p in prepared]
        else:
            inputs = [self.processor.image_inputs(image) for image in images]
            frames = [torch.from_numpy(image[None]) for image in images]
        out = {key: torch.cat([x[key] for x in inputs]) for key in ("pixel_values", "image_grid_thw")}
        if self.store is not None:
            if len(paths) > 1:
                raise Vega3DError(
                    f"{len(paths)} images with data.feature_store: a store keys one image per record (its file stem "
                    "or the record id); expected one image, or the simulator section instead of the store"
                )
            key = str(record["id"]) if self.config.store_key == "id" else Path(paths[0]).stem
            out["image_features"] = [self.store.get(key, [0])[0]]
        elif self.need_frames:
            out["image_frames"] = frames
        return out


#: A media path in a record: a non-empty string (relative to ``data.media_root``).
MediaPath = Annotated[str, Field(min_length=1)]


class RecordMedia(FileRecord):
    """A record's media keys (its other keys are read elsewhere). A bad one is one line:
    ``key: got VALUE; expected <the field's description>``."""

    WHAT = ""

    video: MediaPath = Field(None, description="a path string")  # a video file, frame folder or scan folder
    image: MediaPath | list[MediaPath] = Field(None, description="a path string or a list of them")  # in <image> order
    images: list[MediaPath] = Field(None, description="a list of path strings")  # SPAR's key for several images


def record_media(record: dict, frames_as: str = "video") -> tuple[str | None, list[str]]:
    """A record's video path (None without one) and image paths, one ``<image>`` placeholder each, in
    order (:class:`RecordMedia`): its ``image`` (a path or a list of paths) or SPAR's ``images``, not
    both; with ``frames_as="images"`` a video's frames are the images, so a video and images are refused."""
    media = RecordMedia(**{key: record[key] for key in RecordMedia.model_fields if key in record})
    images = [media.image] if isinstance(media.image, str) else (media.image or media.images or [])
    if media.image is not None and media.images is not None:
        raise Vega3DError("has both 'image' and 'images'; expected one of them")
    if media.video and images and frames_as == "images":
        key = "image" if media.images is None else "images"
        raise Vega3DError(f"has both 'video' and '{key}'; with data.frames_as: images a record has one or the other")
    return media.video, list(images)


def read_image(path: Path) -> np.ndarray:
    """An image file as (H,W,3) uint8 RGB."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except OSError as exc:
        raise Vega3DError(f"{path}: cannot read image ({exc})") from exc


def load_or_skip(load, record, skip: bool, where: str) -> dict | None:
    """``load(record)``, a dataset item; when it fails, None if ``skip`` (``data.skip_bad_records``:
    :func:`collate` drops and counts it), else one :class:`Vega3DError` led by ``where``."""
    try:
        return load(record)
    except Exception as exc:  # noqa: BLE001 - any failure to load is reported with the record
        if skip:
            return None
        why = exc if isinstance(exc, Vega3DError) else f"{type(exc).__name__}: {exc}"
        raise Vega3DError(f"{where}: {why}") from exc


def kept_items(items: list) -> tuple[list, dict]:
    """The items a batch keeps (a ``None`` item is a skipped bad record) and its bookkeeping:
    ``num_skipped`` and the kept ``ids``."""
    kept = [it for it in items if it is not None]
    return kept, {"num_skipped": len(items) - len(kept), "ids": [it["id"] for it in kept]}


def pad_text(kept: list, pad_values: dict, padding_side: str = "right") -> dict:
    """Each key of ``pad_values`` (a 1-D tensor per item, as long as its ``input_ids``) padded with
    its value on ``padding_side`` to the longest item and stacked, plus ``attention_mask`` (1 on the
    items' tokens, 0 on the padding)."""
    length = max(len(it["input_ids"]) for it in kept)

    def pad(x, value):
        fill = torch.full((length - len(x),), value, dtype=x.dtype)
        return torch.cat([x, fill]) if padding_side == "right" else torch.cat([fill, x])

    out = {key: torch.stack([pad(it[key], value) for it in kept]) for key, value in pad_values.items()}
    out["attention_mask"] = torch.stack([pad(torch.ones_like(it["input_ids"]), 0) for it in kept])
    return out


def collate(items: list, pad_token_id: int, padding_side: str = "right") -> dict:
    """Batch dataset items: pad text (``labels`` with -100), concatenate visual inputs in
    batch order, keep frames / features as lists, one per video / image (an item with several
    images gives them as a list). ``None`` items (skipped bad records) are dropped and counted
    in ``num_skipped``."""
    kept, batch = kept_items(items)
    if not kept:
        return batch
    batch.update(pad_text(kept, {"input_ids": pad_token_id, "labels": IGNORE_INDEX, "mm_token_type_ids": 0},
                          padding_side))  # fmt: skip
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
                batch[extra] = [x for it in with_kind for x in _as_list(it[extra])]
    videos = [it for it in kept if "second_per_grid_ts" in it]
    if videos:
        batch["second_per_grid_ts"] = torch.tensor([it["second_per_grid_ts"] for it in videos])
    return batch


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


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
