"""Samples of the five tasks → model inputs, as Video-3D LLM prepares them.

- :func:`siglip_pixels` — colour frames → SigLIP input (F, 3, 384, 384) in [-1, 1]: ``resize``
  squashes the frame to 384 x 384, ``center_crop`` resizes to ``int(384·W_d/H_d)`` x 384 (the
  depth aspect, as released) and keeps the centre 384 columns; PIL bicubic, then (x − 0.5)/0.5
  (the SigLIP processor's mean = std = 0.5).
- :func:`encode` — the ``qwen_1_5`` conversation: system prompt, the user turn with the
  ``F·14·15`` visual placeholders (:data:`~vega3d.mllm.video3d_llm.model.IMAGE_INDEX`) where
  ``<image>`` was, a newline, the optional spatial instruction line, the question; then the
  answer (labels: the answer tokens and ``<|im_end|>``).
- :class:`SceneCache` / :func:`scene_inputs` — per (scan, frames): pixels, discretised token
  positions, world maps (for object cells) and the Wan features from a feature store (keyed by
  the scan name and the frame ids :meth:`Video3DData.choose_frames` returns).
- :class:`Video3DDataset` — training items over ``*_llava_style.json`` files: grounding samples
  carry the GT boxes' cells and the target ids (InfoNCE), Scan2Cap samples their ``<coord>``
  box centre, the others their answer (LM loss). :func:`collate` pads and keeps per-sample lists.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from vega3d.config import Config
from vega3d.errors import Vega3DError
from vega3d.mllm.data import kept_items, load_or_skip, pad_text
from vega3d.mllm.video3d_llm.model import IGNORE_INDEX, IMAGE_INDEX
from vega3d.video3d.data import SAMPLINGS
from vega3d.video3d.formats import SPATIAL_INSTRUCTION
from vega3d.video3d.geometry import IMAGE_SIZE, TOKENS_PER_FRAME, discretize, patch_world_coords

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
ASSISTANT = "<|im_end|>\n<|im_start|>assistant\n"
END = "<|im_end|>"


class Video3DDataConfig(Config):
    """The training data of the Video-3D LLM family (see :mod:`vega3d.mllm.video3d_llm.data`)."""

    root: str = Field(min_length=1)  # the release's data/ folder (vega3d.video3d.Video3DData)
    annotations: list[str] = Field(min_length=1)  # *_llava_style.json files, relative to root (or absolute)
    boxes: Literal["train", "val"] = "train"  # box file grounding targets index: train = scannet_train_gt_box.json
    num_frames: int = Field(32, ge=1)  # frames per scan (frames_upbound)
    sampling: Literal[SAMPLINGS] = "uniform"  # uniform, mc-ratio90, mc-ratio95, mc
    spatial_instruction: bool = True  # the release's add_spatial_instruction (training: True)
    feature_store: str | None = None  # Wan features keyed by scan + frame ids (else the simulator online)
    max_tokens: int | None = Field(None, ge=1)  # a longer sample (visual + text tokens) is a bad record
    skip_bad_records: bool = False  # drop (and count) records that fail to load instead of stopping
    scene_cache: int = Field(2, ge=0)  # scans kept prepared per worker (their samples run one after another)


# ---------------------------------------------------------------------------- pixels and prompts
def siglip_pixels(color, strategy: str = "resize", depth_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """(F, H, W, 3) uint8 → (F, 3, 384, 384) float32 in [-1, 1] (module docstring)."""
    from PIL import Image

    frames = color.numpy() if isinstance(color, torch.Tensor) else np.asarray(color)
    out = []
    for frame in frames:
        im = Image.fromarray(frame)
        if strategy == "resize":
            im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
        else:
            h, w = depth_hw or frame.shape[:2]
            width = int(w * (IMAGE_SIZE / h))
            left = (width - IMAGE_SIZE) // 2
            im = im.resize((width, IMAGE_SIZE), Image.BICUBIC).crop((left, 0, left + IMAGE_SIZE, IMAGE_SIZE))
        out.append(np.asarray(im, dtype=np.float32))
    x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2) / 255.0
    return (x - 0.5) / 0.5


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def encode(tokenizer, question: str, num_frames: int, answer: str | None = None,
           instruction: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(input_ids, labels)`` of one conversation (module docstring). ``question`` holds ``<image>``
    once; ``answer`` None ends the ids with the assistant header (a generation prompt)."""
    before, sep, after = question.partition("<image>")
    if not sep:
        raise Vega3DError(f"question must hold '<image>': {question!r}")
    text = "\n" + (instruction + "\n" if instruction else "") + after.lstrip("\n")
    prompt = _ids(tokenizer, SYSTEM + before) + [IMAGE_INDEX] * (num_frames * TOKENS_PER_FRAME)
    prompt += _ids(tokenizer, text + ASSISTANT)
    reply = _ids(tokenizer, answer + END) if answer is not None else []
    ids = torch.tensor(prompt + reply, dtype=torch.long)
    labels = torch.tensor([IGNORE_INDEX] * len(prompt) + reply, dtype=torch.long)
    return ids, labels


# ---------------------------------------------------------------------------- per-scan inputs
@dataclass
class SceneInputs:
    """One scan's frames prepared: ``frame_ids``, ``pixels`` (F, 3, 384, 384), ``positions``
    (F, 14, 14, 3) discretised token positions, ``world`` (F, 384, 384, 3), ``aspect`` (W/H of
    the depth frames), ``features`` (F, h, w, C) Wan features or None, ``color`` (F, H, W, 3)
    uint8 (for an online simulator)."""

    video: str
    frame_ids: tuple
    pixels: torch.Tensor
    positions: torch.Tensor
    world: torch.Tensor
    aspect: float
    features: torch.Tensor | None
    color: torch.Tensor


def scene_inputs(frames, video: str, strategy: str, features=None) -> SceneInputs:
    """Prepare read frames (:class:`vega3d.video3d.PosedFrames`, with colour and axis alignment) of one
    scan: pixels, world maps, discretised token positions; ``features`` the scan's Wan grids or None."""
    world = frames.world(IMAGE_SIZE, strategy)
    depth_hw = tuple(frames.depth.shape[1:])
    pixels = siglip_pixels(frames.color, strategy, depth_hw)
    positions = discretize(patch_world_coords(world))
    return SceneInputs(video, frames.frame_ids, pixels, positions, world, depth_hw[1] / depth_hw[0], features,
                       frames.color)  # fmt: skip


def read_scene(data, video: str, frame_ids, strategy: str, store=None) -> SceneInputs:
    """One scan of a ``data/`` folder (:class:`vega3d.video3d.Video3DData`) read and prepared; its Wan
    features from ``store`` (a FeatureStore: item = scan name, frames = frame ids) when given."""
    from vega3d.video3d.data import read_posed_frames

    info = data.infos.get(video)
    frames = read_posed_frames(data.scene_dir(video), frame_ids, axis_align=None if info is None else info.axis_align,
                               depth_intrinsics=None if info is None else info.depth_intrinsics)  # fmt: skip
    features = None
    if store is not None:
        features, stored = store.get(video.rsplit("/", 1)[-1], list(frames.frame_ids))
        assert list(stored) == list(frames.frame_ids), (stored, frames.frame_ids)
    return scene_inputs(frames, video, strategy, features)


class SceneCache:
    """The last ``size`` scans' :class:`SceneInputs` (samples of a scan often come together)."""

    def __init__(self, data, strategy: str, store=None, size: int = 2):
        self.data, self.strategy, self.store, self.size = data, strategy, store, size
        self._items: OrderedDict = OrderedDict()

    def get(self, video: str, frame_ids) -> SceneInputs:
        key = (video, tuple(frame_ids))
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        item = read_scene(self.data, video, list(frame_ids), self.strategy, self.store)
        if self.size:
            self._items[key] = item
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return item


def object_inputs(scene: SceneInputs, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cells (P, F, 27, 27) bool, centres (P, 3))`` of boxes (P, 6) in a prepared scan."""
    from vega3d.video3d.geometry import box_cells

    return box_cells(scene.world, boxes), boxes[:, :3].clone()


def sample_item(sample, scene: SceneInputs, tokenizer, *, instruction, boxes=None, train: bool = True,
                need_frames: bool = False) -> dict:  # fmt: skip
    """One sample as a model item: ids (+ labels when ``train``), the scan's visual inputs, and per
    task the grounding objects (``boxes`` (P, 6): GT boxes in training, proposals at evaluation;
    targets = ``object_ids``) or the ``<coord>`` centre (Scan2Cap ``box_input``)."""
    from vega3d.video3d.formats import GROUNDING_TASKS

    grounding = sample.task in GROUNDING_TASKS
    answer = "<ground>" if grounding else (sample.answer if train else None)
    ids, labels = encode(tokenizer, sample.question, len(scene.frame_ids), answer, instruction)
    item = {"id": str(sample.id), "input_ids": ids, "labels": labels, "pixel_values": scene.pixels,
            "positions": scene.positions, "aspect": scene.aspect, "features": scene.features,
            "frames": scene.color if need_frames else None, "coord": None, "objects": None, "positives": None}  # fmt: skip
    if grounding:
        item["objects"] = object_inputs(scene, boxes)
        item["positives"] = list(sample.object_ids) if train else None
    if sample.task == "scan2cap" and sample.box_input is not None:
        item["coord"] = discretize(torch.tensor(sample.box_input[:3], dtype=torch.float32))
    return item


# ---------------------------------------------------------------------------- training data
class Video3DDataset(torch.utils.data.Dataset):
    """Training items over the annotation files (module docstring); checked at construction:
    records, box files, object ids, scans, frame counts."""

    def __init__(self, config: Video3DDataConfig, tokenizer, strategy: str, need_frames: bool = False):
        from vega3d.video3d import Video3DData, check_samples, read_samples

        self.config, self.tokenizer, self.need_frames = config, tokenizer, need_frames
        self.data = Video3DData(config.root)
        root = Path(config.root)
        self.samples = []
        for name in config.annotations:
            path = Path(name) if Path(name).is_absolute() else root / name
            self.samples += read_samples(path)
        grounding = [s for s in self.samples if s.object_ids and s.task != "scan2cap"]
        if grounding:
            boxes = self.data.boxes(config.boxes)
            check_samples(grounding, gt_boxes=boxes, gt_file=str(self.data.box_files[config.boxes]))
        self.frames = {v: self.data.choose_frames(v, config.num_frames, config.sampling)
                       for v in dict.fromkeys(s.video for s in self.samples)}  # fmt: skip
        self.store = None
        if config.feature_store:
            from vega3d.store import FeatureStore

            self.store = FeatureStore(config.feature_store)
        self.strategy = strategy
        self.cache = SceneCache(self.data, strategy, self.store, config.scene_cache)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        return load_or_skip(self.load, sample, self.config.skip_bad_records, sample.where)

    def load(self, sample) -> dict:
        scene = self.cache.get(sample.video, self.frames[sample.video])
        boxes = (
            self.data.proposals(sample.video, self.config.boxes)
            if sample.task in ("scanrefer", "multi3drefer")
            else None
        )
        instruction = SPATIAL_INSTRUCTION if self.config.spatial_instruction else None
        item = sample_item(sample, scene, self.tokenizer, instruction=instruction, boxes=boxes,
                           need_frames=self.need_frames)  # fmt: skip
        if self.config.max_tokens is not None and len(item["input_ids"]) > self.config.max_tokens:
            raise Vega3DError(f"{len(item['input_ids'])} tokens exceed data.max_tokens={self.config.max_tokens}")
        return item


PER_SAMPLE = ("pixel_values", "positions", "features", "frames", "coord", "objects", "positives", "aspect")


def collate(items: list, pad_token_id: int, padding_side: str = "right") -> dict:
    """Pad ``input_ids`` / ``labels`` / ``attention_mask``; per-sample lists for the rest; ``None``
    items (skipped records) dropped and counted in ``num_skipped``."""
    kept, batch = kept_items(items)
    if not kept:
        return batch
    batch.update(pad_text(kept, {"input_ids": pad_token_id, "labels": IGNORE_INDEX}, padding_side))
    for key in PER_SAMPLE:
        batch[key] = [it[key] for it in kept]
    return batch


def to_device(batch: dict, device) -> dict:
    """The model's keyword arguments of a batch, tensors on ``device`` (raw frames stay on the CPU)."""

    def move(x):
        if isinstance(x, torch.Tensor):
            return x.to(device)
        if isinstance(x, tuple):
            return tuple(move(v) for v in x)
        return x

    out = {k: move(batch[k]) for k in ("input_ids", "attention_mask", "labels")}
    out["pixel_values"] = [move(x) for x in batch["pixel_values"]]
    out["positions"] = [move(x) for x in batch["positions"]]
    feats = batch["features"]
    out["gen_features"] = [move(x) for x in feats] if all(f is not None for f in feats) else None
    frames = batch["frames"]
    out["frames"] = frames if all(f is not None for f in frames) else None
    out["coords"] = [move(c) for c in batch["coord"]]
    out["objects"] = [move(o) for o in batch["objects"]]
    out["positives"] = batch["positives"]
    out["aspects"] = batch["aspect"]
    return out
