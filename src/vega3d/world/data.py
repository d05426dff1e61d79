"""Training clips for the world model: synthetic rooms rendered on the fly, or the user's media.

A clip is ``clip_frames`` frames of one camera path at the model's input size (``data.height x
data.width``), with everything random about it drawn from its own ``torch.Generator``, seeded by
the clip's number (``seed_base + data.seed * 10**8 + epoch * num_clips + index``). So item ``i``
of epoch ``e`` is the same whatever the worker count, the batch order or a resume, and no global
RNG is used.

- ``source: synthetic`` — each clip is a new room of :func:`vega3d.scenes.synthetic_scene`
  (room seed = the clip's number, always >= :data:`~vega3d.world.config.TRAIN_SEED_BASE`, so the
  probe's held-out rooms, seeds ``0..n-1``, are never trained on), the camera sweeping
  ``arc_degrees`` over the clip, rendered at the model's size in the DataLoader worker.
- ``source: media`` — clips of consecutive frames (``frame_stride`` apart, a random start) of the
  videos, frame folders and scan folders under ``media_root`` (:mod:`vega3d.media`; one input or a
  folder of them, as ``vega3d extract`` finds them), each frame fitted whole to the model's size as
  the simulator fits it. Videos and frame folders are read clip by clip; a scan folder's colour
  frames are read once, at the model's size, when the dataset is built.

An item: ``frames`` (F, H, W, 3) uint8 (``crop`` > 0: (F, crop, crop, 3), one random square per
frame), ``noise`` ε (16, F, H/8, W/8) float32 and, for the DiT, the noise level ``t`` (the DiT's
integer timestep) and ``sigma`` (:mod:`vega3d.world.noise`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch

from vega3d.errors import Vega3DError
from vega3d.world.config import TRAIN_SEED_BASE, WorldData
from vega3d.world.noise import draw_noise_level

Z_DIM = 16  # Wan2.1's latent channels
CLIP_SEEDS_PER_RUN_SEED = 10**8


def noise_level_drawer(model_config):
    """``draw(generator) -> (t, sigma)`` for the DiT's objective (picklable for DataLoader workers)."""
    m = model_config
    return partial(draw_noise_level, shift=m.shift, logit_mean=m.logit_mean, logit_std=m.logit_std)


class ClipDataset(torch.utils.data.Dataset):
    """``data.num_clips`` clips per epoch (the module docstring); ``noise_level``: a
    :func:`noise_level_drawer` (the DiT's items carry ``t`` and ``sigma``) or None (the VAE's)."""

    def __init__(self, data: WorldData, noise_level=None, seed_base: int = TRAIN_SEED_BASE):
        self.data, self.noise_level, self.seed_base = data, noise_level, seed_base
        self.epoch = 0
        self.sources = media_sources(data) if data.source == "media" else []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.data.num_clips

    def clip_seed(self, index: int) -> int:
        d = self.data
        return self.seed_base + d.seed * CLIP_SEEDS_PER_RUN_SEED + self.epoch * d.num_clips + int(index)

    def __getitem__(self, index: int) -> dict:
        d, seed = self.data, self.clip_seed(index)
        gen = torch.Generator().manual_seed(seed)
        frames = self._synthetic(seed) if d.source == "synthetic" else self._media(index, gen)
        if d.crop:
            frames = random_crops(frames, d.crop, gen)
        f, h, w = frames.shape[:3]
        item = {"id": f"clip-{seed}", "frames": frames, "noise": torch.randn(Z_DIM, f, h // 8, w // 8, generator=gen)}
        if self.noise_level is not None:
            t, sigma = self.noise_level(gen)
            item.update(t=torch.tensor(t, dtype=torch.long), sigma=torch.tensor(sigma, dtype=torch.float32))
        return item

    def _synthetic(self, seed: int) -> torch.Tensor:
        from vega3d.scenes import synthetic_scene

        d = self.data
        scene = synthetic_scene(d.clip_frames, d.height, d.width, seed, arc_degrees=d.arc_degrees)
        return scene.color

    def _media(self, index: int, gen: torch.Generator) -> torch.Tensor:
        d = self.data
        source = self.sources[index % len(self.sources)]
        span = (d.clip_frames - 1) * d.frame_stride + 1
        start = int(torch.randint(0, source.count - span + 1, (1,), generator=gen))
        return source.read(list(range(start, start + span, d.frame_stride)), d.height, d.width)


def random_crops(frames: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """A ``size`` x ``size`` square of each frame (N, H, W, 3) at a position drawn from ``gen``."""
    h, w = frames.shape[1:3]
    ys = torch.randint(0, h - size + 1, (len(frames),), generator=gen).tolist()
    xs = torch.randint(0, w - size + 1, (len(frames),), generator=gen).tolist()
    return torch.stack([f[y : y + size, x : x + size] for f, y, x in zip(frames, ys, xs)])


def collate(items: list[dict]) -> dict:
    """Stack the clips; every clip is valid (``num_skipped`` 0)."""
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0] if k != "id"}
    return {"ids": [it["id"] for it in items], "num_skipped": 0, **batch}


def to_device(batch: dict, device) -> dict:
    """The model's keyword arguments on ``device``."""
    return {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}


def fit_uint8(frames: np.ndarray, height: int, width: int) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, height, width, 3) uint8, fitted whole as the simulator fits frames."""
    from vega3d.simulator.geometry import as_float_frames, fit_frames

    x, _ = fit_frames(as_float_frames(frames), height, width)
    return (x * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class MediaSource:
    """One video, frame folder or scan folder: its frame count and a reader of positions."""

    def __init__(self, path: Path, kind: str, height: int, width: int):
        from vega3d.media import count_frames, load_media

        self.path, self.kind = path, kind
        self.frames = None
        if kind == "scan":  # colour only, read once at the model's size
            self.frames = fit_uint8(load_media(path, num_frames=10**9, kind="scan").frames, height, width)
            self.count = len(self.frames)
        else:
            self.count = count_frames(path)

    def read(self, positions: list[int], height: int, width: int) -> torch.Tensor:
        from vega3d.media import read_frames

        if self.frames is not None:
            return self.frames[positions]
        return fit_uint8(read_frames(self.path, positions), height, width)


def media_sources(data: WorldData) -> list[MediaSource]:
    """Every input under ``data.media_root`` (``vega3d extract``'s rule), each long enough for a clip."""
    from vega3d.store.inputs import discover_inputs

    items = discover_inputs([data.media_root])
    span = (data.clip_frames - 1) * data.frame_stride + 1
    sources = [MediaSource(it.path, it.kind, data.height, data.width) for it in items]
    short = [f"{s.path} ({s.count})" for s in sources if s.count < span]
    if not sources or short:
        raise Vega3DError(
            f"data.media_root {data.media_root}: "
            + (f"inputs with fewer frames than a clip spans: {', '.join(short[:5])}" if short else "no inputs found")
            + f"; a clip of data.clip_frames={data.clip_frames} frames, data.frame_stride={data.frame_stride} apart, "
            f"spans {span} frames"
        )
    return sources


def statistics_frames(data: WorldData, count: int) -> torch.Tensor:
    """``count`` frames (N, 3, H, W) float in [0, 1] at the model's size, from clips of a seed range of
    their own (:data:`~vega3d.world.config.STATS_SEED_BASE`): what the latent mean/std are measured on."""
    from vega3d.world.config import STATS_SEED_BASE

    dataset = ClipDataset(data.replace(crop=0), seed_base=STATS_SEED_BASE)
    frames, index = [], 0
    while sum(len(f) for f in frames) < count:
        frames.append(dataset[index]["frames"])
        index += 1
    return torch.cat(frames)[:count].permute(0, 3, 1, 2).float() / 255.0
