"""Answering questions about videos with a VEGA-3D checkpoint (batched generation).

:class:`Answerer` holds the model, its processor and (for the generative branch) the
simulator. ``answer(questions, videos)`` samples ``num_frames`` frames per video
uniformly, builds the chat prompt, runs greedy (or configured) generation in batches
with left padding and returns the decoded answers, in order.

Reusing media. A scene usually has many questions. :meth:`Answerer.prepare` reads a video
once — the frames sampled exactly as in training (:func:`vega3d.mllm.data.load_video`),
their ``second_per_grid_ts`` and the processor's ``pixel_values_videos`` — into a
:class:`PreparedVideo`, which ``answer`` accepts in place of the path; the simulator's
features for it are computed on first use and kept on it. Paths given to ``answer`` go
through a small LRU :class:`MediaCache` (bounded by count and bytes), and a path that
appears twice in one batch is prepared once; ``media_cache=0`` turns all reuse of paths
off (every question reads its video, as without reuse). Answers are
the same strings with and without reuse: the same frames, the same preprocessing and the
same simulator call (its noise draw depends only on its seed and the frame count).

Frames as images. ``frames_as="images"`` gives the model the sampled frames the way the released
VEGA-3D spatial model takes them (docs/release.md, "Frames as images"): each frame prepared as the
release does (:func:`vega3d.mllm.release.frames.preprocess_release_frames`: 518 px wide, trimmed to
multiples of 28), one ``<|image_pad|>`` block per frame in the prompt, pixel values from the image
processor; the simulator sees the same prepared frames, one call per image (as the model makes an
image's grid from ``image_frames`` in training: each image the noise generator's first draw), and
each image takes its frame's grid. The other mode, ``"video"``, gives them as one Qwen video. :meth:`Answerer.from_checkpoint`
uses the mode the checkpoint was trained in (``data.frames_as``, recorded), else ``"video"``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from vega3d.config import Config, Int
from vega3d.errors import Vega3DError

DEFAULT_CACHE_ITEMS = 2
DEFAULT_CACHE_BYTES = 2 * 1024**3
#: RAM of the simulator's feature cache (vega3d.store.online): every video's features kept while they fit.
DEFAULT_FEATURE_CACHE_BYTES = 4 * 1024**3
#: How an Answerer gives the sampled frames to the model: one Qwen video, or one image per frame (the release's way).
FRAMES_AS = ("video", "images")


def simulator_from_record(record: dict, device="cpu", dtype=None, path=None):
    """Rebuild the simulator a checkpoint recorded (``config.simulator``); ``path`` overrides
    the recorded Wan folder (same weights elsewhere)."""
    from vega3d.simulator import WanWorldSimulator

    folder = path or ((record or {}).get("model") or {}).get("path")
    if not record or not folder:
        raise Vega3DError(
            f"the generative branch is on but the checkpoint records no simulator{' folder' if record else ''}: "
            "pass one (--simulator / simulator=), or answer without it (--baseline / load_simulator=False)"
        )
    return WanWorldSimulator.from_pretrained(
        folder,
        timestep=record["timestep"],
        shift=record["shift"],
        block=record["block"],
        height=record["height"],
        width=record["width"],
        seed=record["seed"],
        dtype=dtype or record["dtype"],
        device=device,
        vae_dtype=record.get("vae_dtype", "float32"),
        pad=record.get("pad", False),
        batch_frames=record.get("batch_frames"),  # the recorded computation (None: a record from before it)
        deterministic=bool(record.get("deterministic", False)),  # process-wide when True, as it was recorded
    )


def _tensor_bytes(x) -> int:
    return int(x.numel() * x.element_size()) if isinstance(x, torch.Tensor) else int(getattr(x, "nbytes", 0))


@dataclass(eq=False)
class PreparedVideo:
    """One video read and preprocessed for an :class:`Answerer` (see the module docstring).

    ``frames`` (N,H,W,3) uint8, the frames the model and the simulator see (the sampled frames;
    with ``frames_as="images"`` as the release prepares them); ``second_per_grid_ts`` Qwen's
    temporal spacing (seconds per temporal patch; used for videos only); ``pixel_values`` and
    ``grid_thw`` from the processor: a video's (T*Hp*Wp, 3*tp*p*p) float32 and (1, 3), or with
    ``frames_as="images"`` N images' and (N, 3); ``source`` the path it was read from (None for
    in-memory frames); ``settings`` the answerer settings it was made under (frame count,
    frame_fps, temporal patch, pixel budget, frames_as) — an answerer with other settings refuses
    it. ``features`` (N,h,w,C): the simulator's grid, filled on first use by ``answer``
    (``features_from``: the simulator that made it)."""

    frames: np.ndarray
    second_per_grid_ts: float
    pixel_values: torch.Tensor
    grid_thw: torch.Tensor
    source: str | None
    settings: tuple
    features: torch.Tensor | None = None
    features_from: object = None
    frames_as: str = "video"

    @property
    def nbytes(self) -> int:
        """Bytes held (frames, pixel values and features, on whatever device)."""
        return sum(_tensor_bytes(x) for x in (self.frames, self.pixel_values, self.features) if x is not None)

    def model_inputs(self) -> dict:
        """The processor's outputs under the model's argument names: a video's, or the images'."""
        if self.frames_as == "images":
            return {"pixel_values": self.pixel_values, "image_grid_thw": self.grid_thw}
        return {
            "pixel_values_videos": self.pixel_values,
            "video_grid_thw": self.grid_thw,
            "second_per_grid_ts": self.second_per_grid_ts,
        }


class MediaCache:
    """LRU cache of :class:`PreparedVideo` keyed by (path, its size and mtime, settings), at
    most ``max_items`` entries and ``max_bytes`` bytes (an entry larger than ``max_bytes`` is
    not kept). ``max_items=0`` keeps nothing. Not thread-safe (one answering thread)."""

    def __init__(self, max_items: int = DEFAULT_CACHE_ITEMS, max_bytes: int = DEFAULT_CACHE_BYTES):
        for name, value in (("media_cache", max_items), ("media_cache_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise Vega3DError(f"{name} must be a non-negative integer, got {value!r}")
        self.max_items, self.max_bytes = max_items, max_bytes
        self._entries: OrderedDict = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def key(path, settings: tuple) -> tuple:
        path = Path(path)
        try:
            stat = path.stat()
        except OSError:
            return (str(path), None, settings)  # missing: not cached; load_video names it
        return (str(path.resolve()), (stat.st_size, stat.st_mtime_ns), settings)

    def get(self, key):
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry

    def put(self, key, entry: PreparedVideo) -> None:
        if self.max_items == 0 or key[1] is None:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self.trim()

    def trim(self) -> None:
        """Drop least recently used entries until within both bounds (entries grow when
        their simulator features are added)."""
        while self._entries and (len(self._entries) > self.max_items or self.nbytes > self.max_bytes):
            self._entries.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class AnswerSettings(Config):
    """An answerer's settings, checked where they are given (:class:`Answerer`, its ``from_checkpoint``
    and ``answer``). A bad one is one line: ``name: got VALUE; expected <the field's description>``."""

    WHAT = ""

    num_frames: Int = Field(32, ge=1, description="an integer >= 1")  # frames sampled uniformly per video
    frames_as: Literal[FRAMES_AS] = Field("video", description=f"one of {', '.join(FRAMES_AS)}")  # module docstring
    feature_cache_bytes: Int = Field(DEFAULT_FEATURE_CACHE_BYTES, ge=0, description="an integer >= 0")  # simulator's
    max_new_tokens: Int = Field(128, ge=1, description="an integer >= 1")  # longest answer, in tokens
    batch_size: Int = Field(4, ge=1, description="an integer >= 1")  # questions per generate call


def question_problems(questions) -> list[str]:
    """What is wrong with ``questions`` (each a string with some non-whitespace text; named by its
    position when there are several); empty when nothing is."""
    return [
        f"question{f' #{i}' if len(questions) > 1 else ''}: expected a non-empty question, got {q!r}"
        for i, q in enumerate(questions)
        if not isinstance(q, str) or not q.strip()
    ]


class Answerer:
    """Batched question answering over videos. See the module docstring.

    ``media_cache`` / ``media_cache_bytes``: bounds of the cache of videos given as paths
    (0 items: no cache). ``frames_as``: "video" (one Qwen video) or "images" (one image per
    frame, as the released model takes them; module docstring)."""

    def __init__(
        self,
        model,
        processor,
        num_frames: int = 32,
        device="cpu",
        frame_fps: float = 1.0,
        media_cache: int = DEFAULT_CACHE_ITEMS,
        media_cache_bytes: int = DEFAULT_CACHE_BYTES,
        frames_as: str = "video",
    ):
        AnswerSettings(num_frames=num_frames, frames_as=frames_as)
        self.frames_as = frames_as
        self.model = model.eval()
        self.processor = processor
        self.num_frames = int(num_frames)
        self.frame_fps = float(frame_fps)
        self.device = torch.device(device)
        self.cache = MediaCache(media_cache, media_cache_bytes)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint,
        base=None,
        simulator=None,
        device="cpu",
        dtype="float32",
        num_frames: int | None = None,
        video_min_pixels=None,
        video_max_pixels=None,
        load_simulator: bool = True,
        media_cache: int = DEFAULT_CACHE_ITEMS,
        media_cache_bytes: int = DEFAULT_CACHE_BYTES,
        check_base: bool = True,
        feature_cache_bytes: int = DEFAULT_FEATURE_CACHE_BYTES,
        feature_cache_dir=None,
        frames_as: str | None = None,
    ) -> Answerer:
        """Load a checkpoint folder. ``simulator``: a WanWorldSimulator, a Wan folder, or None
        (rebuild the recorded one when the generative branch is on). Frame count and pixel
        budget default to the ones recorded at training time (else 32 frames, Qwen's defaults).
        ``load_simulator=False``: no simulator (baseline answers or precomputed features only).
        ``check_base=False``: accept a base folder whose fingerprint differs from the recorded one.
        ``feature_cache_bytes`` / ``feature_cache_dir``: the simulator's feature cache, RAM and an
        optional disk tier that a later run reads (:mod:`vega3d.store.online`; 0 and None: none).
        ``frames_as``: "video" or "images" (see :class:`Answerer`); None: the recorded training mode,
        else "video"."""
        from vega3d.mllm.checkpoint import read_checkpoint_config
        from vega3d.mllm.model import Vega3DQwen
        from vega3d.mllm.processing import Vega3DProcessor
        from vega3d.store.online import with_feature_cache

        given = {"num_frames": num_frames, "frames_as": frames_as}  # None: as recorded
        AnswerSettings(feature_cache_bytes=feature_cache_bytes, **{k: v for k, v in given.items() if v is not None})
        config = read_checkpoint_config(checkpoint)
        if not load_simulator:
            simulator = None
        elif config.generative and (simulator is None or isinstance(simulator, (str, Path))):
            simulator = simulator_from_record(config.simulator, device=device, path=simulator)
        if simulator is not None:
            simulator = with_feature_cache(simulator, feature_cache_bytes, feature_cache_dir)
        model = Vega3DQwen.from_pretrained(
            checkpoint, base=base, simulator=simulator, dtype=dtype, device=device, check_base=check_base
        )
        pre = dict(config.preprocessing)
        processor = Vega3DProcessor.from_pretrained(
            base or config.base_model,
            video_min_pixels if video_min_pixels is not None else pre.get("video_min_pixels"),
            video_max_pixels if video_max_pixels is not None else pre.get("video_max_pixels"),
        )
        num_frames = num_frames if num_frames is not None else pre.get("num_frames", 32)
        return cls(
            model,
            processor,
            num_frames=num_frames,
            device=device,
            frame_fps=pre.get("frame_fps", 1.0),
            media_cache=media_cache,
            media_cache_bytes=media_cache_bytes,
            frames_as=frames_as or pre.get("frames_as", "video"),
        )

    def stand_in_parts(self) -> list[str]:
        """The model's stand-in parts (:meth:`Vega3DQwen.stand_in_parts`: "base", "simulator",
        "features", "model"); empty for real weights."""
        return self.model.stand_in_parts()

    @property
    def stand_in(self) -> bool:
        """True when answers come from stand-ins (they are then meaningless)."""
        return bool(self.stand_in_parts())

    # -- media ----------------------------------------------------------------------------
    @property
    def media_settings(self) -> tuple:
        """What a :class:`PreparedVideo` depends on: (num_frames, frame_fps, temporal patch,
        video_min_pixels, video_max_pixels, frames_as)."""
        p = self.processor
        return (
            self.num_frames,
            self.frame_fps,
            int(p.image_processor.temporal_patch_size),
            int(p.video_min_pixels),
            int(p.video_max_pixels),
            self.frames_as,
        )

    def prepare(self, video) -> PreparedVideo:
        """Read and preprocess one video (a path — video file, frame folder or scan folder —
        or frames (N,H,W,3) uint8 / (N,3,H,W) float [0,1]) exactly as ``answer`` does, for
        reuse across questions. Does not use the cache; safe to call from another thread."""
        settings = self.media_settings
        frames, spg, source = self._sample(video, temporal_patch=settings[2])
        frames, pixels, thw = self._processed(frames)
        return PreparedVideo(frames, spg, pixels, thw, source, settings, frames_as=self.frames_as)

    def _sample(self, video, temporal_patch: int) -> tuple[np.ndarray, float, str | None]:
        """``num_frames`` frames of ``video`` sampled uniformly, (N,H,W,3) uint8, their
        ``second_per_grid_ts`` and the path they were read from (None for frames)."""
        from vega3d.mllm.data import load_video, seconds_per_grid
        from vega3d.mllm.processing import to_uint8_frames
        from vega3d.scenes import sample_frames

        if isinstance(video, (str, os.PathLike)):
            frames, _, spg = load_video(video, self.num_frames, self.frame_fps, temporal_patch)
            return frames, spg, str(video)
        frames = to_uint8_frames(video, "video")
        idx = sample_frames(len(frames), self.num_frames)
        return frames[idx], seconds_per_grid(len(frames), None, len(idx), self.frame_fps, temporal_patch), None

    def _processed(self, frames: np.ndarray) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """(the frames the model and the simulator see, pixel values, grid_thw): the sampled frames
        as one video, or with ``frames_as="images"`` prepared as the release does, one image each."""
        from vega3d.mllm.release.frames import release_image_inputs

        if self.frames_as == "video":
            inputs = self.processor.video_inputs(frames)
            return np.ascontiguousarray(frames), inputs["pixel_values_videos"], inputs["video_grid_thw"]
        images, inputs = release_image_inputs(self.processor, frames)
        return images, inputs["pixel_values"], inputs["image_grid_thw"]

    def _prepared(self, video, batch_seen: dict) -> PreparedVideo:
        """``video`` as a PreparedVideo: given, from this call, from the cache, or read now."""
        if isinstance(video, PreparedVideo):
            if video.settings != self.media_settings:
                raise Vega3DError(
                    f"prepared video {video.source or '(frames)'} was made with settings {video.settings} "
                    f"(num_frames, frame_fps, temporal_patch, video_min_pixels, video_max_pixels, frames_as) but this "
                    f"answerer uses {self.media_settings}; prepare it with this answerer"
                )
            return video
        if not isinstance(video, (str, os.PathLike)):
            return self.prepare(video)
        if self.cache.max_items == 0:  # no reuse: read for every question
            return self.prepare(video)
        key = MediaCache.key(video, self.media_settings)
        entry = batch_seen.get(key) or self.cache.get(key)
        if entry is None:
            entry = self.prepare(video)
            self.cache.put(key, entry)
        batch_seen[key] = entry
        return entry

    def _uses_simulator(self, generative) -> bool:
        config = getattr(self.model, "config", None)
        on = bool(getattr(config, "generative", False))
        use = on if generative is None else bool(generative)
        return use and on and getattr(self.model, "simulator", None) is not None

    def _features(self, video: PreparedVideo) -> torch.Tensor:
        """The simulator's grid for ``video``, computed once and kept on it: one call over a video's
        frames; one call per frame for images, as the model makes them from ``image_frames`` in
        training (each image the noise generator's first draw)."""
        simulator = self.model.simulator
        if video.features is None or video.features_from is not simulator:
            frames = torch.from_numpy(video.frames)
            if video.frames_as == "images":
                video.features = torch.cat([self.model.simulator_features(f[None]) for f in frames])
            else:
                video.features = self.model.simulator_features(frames)
            video.features_from = simulator
            self.cache.trim()
        return video.features

    # -- answering ------------------------------------------------------------------------
    @torch.no_grad()
    def answer(
        self,
        questions: list[str],
        videos: list,
        max_new_tokens: int = 128,
        batch_size: int = 4,
        generative: bool | None = None,
        video_features: list | None = None,
        **generate_kwargs,
    ) -> list[str]:
        """Answers to ``questions[i]`` about ``videos[i]`` (a path, a frame folder / scan folder,
        frames (N,H,W,3) uint8 / (N,3,H,W) float, or a :class:`PreparedVideo` from
        :meth:`prepare`). ``video_features``: optional precomputed grids (N,h,w,C) per video,
        used instead of the simulator (with ``frames_as="images"``: grid i for frame i). Greedy
        unless ``generate_kwargs`` say otherwise."""
        from vega3d.mllm.data import collate, to_device

        AnswerSettings(max_new_tokens=max_new_tokens, batch_size=batch_size)
        problems = question_problems(questions)
        if len({len(questions), len(videos), len(questions if video_features is None else video_features)}) > 1:
            features = "no" if video_features is None else len(video_features)
            problems.append(
                f"answer: {len(questions)} questions, {len(videos)} videos and {features} video_features; "
                "expected one video (and one video_features grid, when given) per question"
            )
        if problems:
            raise Vega3DError("; ".join(problems))
        tok = self.processor.tokenizer
        generate_kwargs.setdefault("do_sample", False)
        source = (
            "given" if video_features is not None else "simulator" if self._uses_simulator(generative) else "frames"
        )
        answers = []
        for start in range(0, len(questions), batch_size):
            seen = {}  # a video twice in one batch is prepared once (with the cache on)
            items = [
                self._item(i, questions[i], self._prepared(videos[i], seen), source, video_features)
                for i in range(start, min(start + batch_size, len(questions)))
            ]
            batch = to_device(collate(items, tok.pad_token_id, padding_side="left"), self.device)
            batch.pop("labels")
            out = self.model.generate(
                **batch, generative=generative, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                **generate_kwargs,
            )  # fmt: skip
            answers.extend(tok.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True))
        return answers

    def _item(self, i: int, question: str, video: PreparedVideo, source: str, video_features) -> dict:
        """One question as a batch item: the prompt (one video, or one image per frame, before the
        question), the pixels and the generative input (a list of one-frame grids for images)."""
        from vega3d.mllm.processing import video_as_images

        kind = "image" if video.frames_as == "images" else "video"
        item = {"id": str(i), **video.model_inputs()}
        grid_thw = item[f"{kind}_grid_thw"]
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
        if kind == "image":  # as training with data.frames_as: images turns a record's video into images
            messages = video_as_images(messages, len(grid_thw))
        item.update(self.processor.encode(messages, add_generation_prompt=True, **{f"{kind}_grid_thw": grid_thw}))
        name, value = self._generative_input(i, video, source, video_features)
        item[f"{kind}_{name}"] = list(value.split(1)) if kind == "image" else value
        return item

    def _generative_input(self, i: int, video: PreparedVideo, source: str, video_features) -> tuple:
        """("features", (N,h,w,C)) — ``source`` "given" or the "simulator"'s kept on the video —
        or ("frames", the frames (N,H,W,3) uint8) for the raw "frames"."""
        if source == "given":
            return "features", video_features[i]
        if source == "simulator":
            return "features", self._features(video)
        return "frames", torch.from_numpy(video.frames)
