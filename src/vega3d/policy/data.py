"""Training samples for OpenVLA-OFT from a LeRobot-format LIBERO dataset (``vega3d.libero.dataset``'s reader).

One sample per frame t of every episode, as OFT's RLDS pipeline builds them
(``prismatic/vla/datasets``, octo's ``chunk_act_obs``, ``libero_dataset_transform``):

- **images** of ``model.cameras`` (LeRobot keys ``observation.images.image`` / ``image2``),
  upright as recorded; resized 256 -> 224 with the training resize (JPEG round trip +
  antialiased Lanczos-3, :func:`vega3d.libero.protocol.resize_for_policy`); then, with
  ``random_crop``, a square crop of 90 % area at a random offset resized back to 224
  (``tf.image.crop_and_resize`` bilinear; OFT ``random_resized_crop`` scale 0.9, ratio 1), else
  the centre crop the evaluation uses; with ``color_jitter`` brightness ±0.2, contrast and
  saturation x[0.8, 1.2], hue ±0.05, each clipped to [0, 1], in that order (OFT ``image_aug``);
- **proprio** ``observation.state`` (8-D), BOUNDS_Q99-normalised and clipped to [-1, 1];
- **actions** t .. t+K-1 (past the end the last action repeats), the gripper converted from
  LIBERO's convention (-1 open, +1 close) to OpenVLA's (``1 - clip(g, 0, 1)``: 1 open, 0 close)
  when ``action_convention`` is ``libero``, then normalised like the proprio where the mask
  says (the gripper stays in [0, 1]);
- the **instruction** (the episode's task) -> the OFT prompt;
- for the generative branch: the branch cameras' final policy images (``generative_frames``,
  uint8, for the online simulator) or their Wan grids from ``feature_store`` (item
  ``ep<episode:06d>/<camera>``, written by :func:`extract_features` from the centre-cropped
  policy images; random crops would move the grid, so a store requires ``random_crop: false``).

Randomness: each sample's crop and jitter come from ``torch.Generator`` seeded by
(``seed``, epoch, sample index) — the same sample in the same epoch is the same tensor in any
worker. Decoded episodes are kept in a small per-worker cache (``cache_episodes``).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from vega3d.config import Config
from vega3d.errors import Vega3DError
from vega3d.libero.protocol import CENTER_CROP_AREA, normalize_proprio, resize_for_policy

#: vega3d camera -> LeRobot feature key (the layout of lerobot/libero and of the harness's recorder).
CAMERA_KEYS = {"agentview": "observation.images.image", "wrist": "observation.images.image2"}
#: OFT's image_aug ranges (``prismatic/vla/datasets/datasets.py``).
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0.2, (0.8, 1.2), (0.8, 1.2), 0.05


class PolicyData(Config):
    """Where the demonstrations are and how samples are made (module docstring)."""

    dataset: str = Field(min_length=1)  # a LeRobot-format dataset folder (v2.x or v3.0)
    camera_keys: dict[str, str] = Field(default_factory=lambda: dict(CAMERA_KEYS))  # camera -> LeRobot image feature
    state_key: str = "observation.state"  # the per-frame proprio vector
    action_key: str = "action"  # the per-frame action vector
    action_convention: str = Field(
        "libero", pattern="^(libero|openvla)$"
    )  # gripper: LIBERO's -1/+1 or OpenVLA's [0, 1]
    statistics: str = Field("base", pattern="^(base|dataset)$")  # q01/q99: the base folder's, or computed from the data
    random_crop: bool = True  # OFT image_aug: 90 %-area crop at a random offset (else the evaluation's centre crop)
    color_jitter: bool = True  # OFT image_aug: brightness, contrast, saturation, hue
    feature_store: str | None = None  # Wan grids of the branch cameras (else the simulator online)
    max_episodes: int | None = Field(None, ge=1)  # the first N episodes only (smoke runs)
    cache_episodes: int = Field(4, ge=1)  # decoded episodes kept per worker
    seed: int = Field(0, ge=0)  # augmentation draws


# --- images -----------------------------------------------------------------------------------------------


def crop_resize(image: np.ndarray, top: float, left: float, side: float) -> np.ndarray:
    """``tf.image.crop_and_resize`` of the box [top, left, top + side, left + side] (fractions of the image)
    back to the input size, bilinear in float32 on [0, 1] -> (H, W, 3) float32 (uint8 in). The arithmetic of
    :func:`vega3d.libero.protocol.center_crop`, at any offset."""
    h, w = image.shape[:2]
    x = image.astype(np.float32) * np.float32(1.0 / 255.0) if image.dtype == np.uint8 else image

    def coords(n: int, lo: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo, hi = np.float32(lo), np.float32(lo) + np.float32(side)
        pos = lo * np.float32(n - 1) + np.arange(n, dtype=np.float32) * (
            (hi - lo) * np.float32(n - 1) / np.float32(n - 1)
        )
        a = np.floor(pos).astype(np.int64)
        return a, np.minimum(np.ceil(pos).astype(np.int64), n - 1), (pos - a).astype(np.float32)

    y0, y1, fy = coords(h, top)
    x0, x1, fx = coords(w, left)
    fx = fx[None, :, None]
    upper = x[y0][:, x0] + (x[y0][:, x1] - x[y0][:, x0]) * fx
    lower = x[y1][:, x0] + (x[y1][:, x1] - x[y1][:, x0]) * fx
    return upper + (lower - upper) * fy[:, None, None]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8 as ``tf.image.convert_image_dtype(..., saturate=True)``: x 255.5, truncated."""
    return np.clip(np.clip(x, 0.0, 1.0) * np.float32(255.5), 0, 255).astype(np.uint8)


def rgb_to_hsv(x: np.ndarray) -> np.ndarray:
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    v, m = x.max(-1), x.min(-1)
    c = v - m
    s = np.where(v > 0, c / np.where(v > 0, v, 1), 0)
    safe = np.where(c > 0, c, 1)
    h = np.where(v == r, (g - b) / safe, np.where(v == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    h = np.where(c > 0, (h / 6) % 1.0, 0)
    return np.stack([h, s, v], -1).astype(np.float32)


def hsv_to_rgb(x: np.ndarray) -> np.ndarray:
    h, s, v = x[..., 0], x[..., 1], x[..., 2]
    k = (np.array([5, 3, 1], np.float32) + h[..., None] * 6) % 6
    return (v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1)).astype(np.float32)


def color_jitter(x: np.ndarray, gen: torch.Generator) -> np.ndarray:
    """OFT's colour augmentation on a [0, 1] float image, each step clipped (brightness, contrast, saturation, hue)."""
    u = torch.rand(4, generator=gen, dtype=torch.float64).numpy()
    x = np.clip(x + np.float32((2 * u[0] - 1) * BRIGHTNESS), 0, 1)
    mean = x.mean(axis=(0, 1), keepdims=True)
    x = np.clip((x - mean) * np.float32(CONTRAST[0] + u[1] * (CONTRAST[1] - CONTRAST[0])) + mean, 0, 1)
    hsv = rgb_to_hsv(x)
    hsv[..., 1] = np.clip(hsv[..., 1] * np.float32(SATURATION[0] + u[2] * (SATURATION[1] - SATURATION[0])), 0, 1)
    hsv[..., 0] = (hsv[..., 0] + np.float32((2 * u[3] - 1) * HUE)) % 1.0
    return np.clip(hsv_to_rgb(hsv), 0, 1)


def policy_image(frame: np.ndarray, size: int, gen: torch.Generator | None, crop: bool, jitter: bool) -> np.ndarray:
    """A recorded frame as the policy trains on it (module docstring): uint8 (size, size, 3)."""
    image = resize_for_policy(frame, size) if frame.shape[:2] != (size, size) else frame
    side = np.sqrt(np.float32(CENTER_CROP_AREA))  # float32 box arithmetic, as tf (and protocol.center_crop)
    if crop:
        top, left = (torch.rand(2, generator=gen) * float(np.float32(1) - side)).numpy()
    else:
        top = left = (np.float32(1) - side) / np.float32(2)
    x = crop_resize(image, top, left, side)
    return to_uint8(color_jitter(x, gen) if jitter else x)


# --- actions ------------------------------------------------------------------------------------------------


def to_openvla_gripper(actions: np.ndarray) -> np.ndarray:
    """LIBERO's gripper (-1 open, +1 close) -> OpenVLA's (1 open, 0 close): ``1 - clip(g, 0, 1)`` (OFT's
    ``libero_dataset_transform``); other columns unchanged."""
    out = np.array(actions, dtype=np.float64, copy=True)
    out[..., -1] = 1.0 - np.clip(out[..., -1], 0.0, 1.0)
    return out


def action_chunk(actions: np.ndarray, t: int, k: int) -> np.ndarray:
    """Actions t .. t+k-1 of an episode, the last one repeated past its end (octo ``chunk_act_obs``)."""
    return actions[np.minimum(np.arange(t, t + k), len(actions) - 1)]


# --- the dataset ------------------------------------------------------------------------------------------


def open_dataset(data: PolicyData, action_dim: int, proprio_dim: int, cameras: list[str]):
    """The LeRobot dataset, checked against the policy before any sample is read: the action and state widths
    (one :class:`Vega3DError` line naming ``meta/info.json``) and the cameras."""
    from vega3d.libero.dataset import LeRobotDataset

    dataset = LeRobotDataset(data.dataset, state_key=data.state_key, action_key=data.action_key, action_dim=action_dim)
    info = Path(data.dataset) / "meta" / "info.json"
    state = int(dataset.features[data.state_key]["shape"][0])
    missing = [k for k in (data.camera_keys.get(c) for c in cameras) if k not in dataset.camera_keys]
    if state != proprio_dim or missing:
        cameras_note = f"; no camera feature {missing} (data.camera_keys) in {dataset.camera_keys}" if missing else ""
        raise Vega3DError(
            f"{info}: {data.state_key} has {state} dimensions; the policy's proprio has {proprio_dim}{cameras_note}"
        )
    return dataset


def dataset_statistics(dataset, data: PolicyData):
    """BOUNDS_Q99 statistics of the dataset's actions (OpenVLA gripper convention; the gripper unmasked, as OFT)
    and states (:class:`vega3d.policy.folder.Statistics`, key ``lerobot:<folder name>``)."""
    from vega3d.policy.folder import Statistics

    columns = dataset.read_columns([data.state_key, data.action_key])
    actions = columns[data.action_key].astype(np.float64)
    if data.action_convention == "libero":
        actions = to_openvla_gripper(actions)
    states = columns[data.state_key].astype(np.float64)
    q = lambda v, p: np.quantile(v, p, axis=0).tolist()  # noqa: E731
    return Statistics(f"lerobot:{Path(data.dataset).name}", q(actions, 0.01), q(actions, 0.99),
                      [True] * (actions.shape[1] - 1) + [False], q(states, 0.01), q(states, 0.99),
                      [True] * states.shape[1])  # fmt: skip


class PolicyDataset(torch.utils.data.Dataset):
    """One training sample per frame (module docstring); ``processor`` an :class:`~vega3d.policy.processing.OFTProcessor`."""

    def __init__(self, data: PolicyData, processor, *, chunk: int, cameras: list[str], branch_cameras: list[str] | None,
                 need_frames: bool, store=None):  # fmt: skip
        self.data, self.processor, self.chunk = data, processor, chunk
        self.cameras, self.branch_cameras = list(cameras), list(branch_cameras or [])
        self.need_frames, self.store = need_frames, store
        stats = processor.statistics
        self.lerobot = open_dataset(data, stats.action_dim, stats.proprio_dim, self.cameras)
        episodes = range(min(len(self.lerobot), data.max_episodes or len(self.lerobot)))
        lengths = [int(self.lerobot._episodes[e]["length"]) for e in episodes]  # the episode table (no decoding)
        self.index = [(e, t) for e, n in zip(episodes, lengths) for t in range(n)]
        self.epoch = 0
        self._cache: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _episode(self, e: int):
        if e not in self._cache:
            keys = sorted({self.data.camera_keys[c] for c in self.cameras})
            self._cache[e] = self.lerobot.episode(e, cameras=keys)
            while len(self._cache) > self.data.cache_episodes:
                self._cache.popitem(last=False)
        self._cache.move_to_end(e)
        return self._cache[e]

    def __getitem__(self, i: int) -> dict:
        e, t = self.index[i]
        episode = self._episode(e)
        seed = np.random.SeedSequence([self.data.seed, self.epoch, i]).generate_state(1, np.uint64)[0]
        gen = torch.Generator().manual_seed(int(seed) % 2**63)
        proc, d = self.processor, self.data
        images = {c: policy_image(episode.images[d.camera_keys[c]][t], proc.image_size, gen, d.random_crop, d.color_jitter)
                  for c in self.cameras}  # fmt: skip
        actions = episode.action if d.action_convention == "openvla" else to_openvla_gripper(episode.action)
        s = proc.statistics
        target = normalize_proprio(action_chunk(actions, t, self.chunk), s.action_q01, s.action_q99, s.action_mask)
        sample = {"id": f"{episode.index}/{t}", "prompt": proc.prompt_ids(episode.task),
                  "pixel_values": proc.pixel_values([images[c] for c in self.cameras]),
                  "proprio": torch.tensor(proc.normalize_proprio(episode.state[t]), dtype=torch.float32),
                  "actions": torch.tensor(target, dtype=torch.float32)}  # fmt: skip
        if self.store is not None:
            grids = [self.store.get(feature_item(episode.index, c), [t])[0][0] for c in self.branch_cameras]
            sample["generative_features"] = torch.stack(grids).float()
        elif self.need_frames:
            sample["generative_frames"] = torch.from_numpy(np.stack([images[c] for c in self.branch_cameras]))
        return sample


def feature_item(episode: int, camera: str) -> str:
    """The feature-store item of one episode's camera."""
    return f"ep{int(episode):06d}/{camera}"


def collate(samples: list[dict], processor) -> dict:
    """A batch for :meth:`VLAPolicy.forward`, plus ``ids`` and ``num_skipped`` (the loop's bookkeeping)."""
    ids, mask = processor.batch([s["prompt"] for s in samples])
    batch = {"input_ids": ids, "attention_mask": mask, "ids": [s["id"] for s in samples], "num_skipped": 0}
    for key in ("pixel_values", "proprio", "actions", "generative_features", "generative_frames"):
        if key in samples[0]:
            batch[key] = torch.stack([s[key] for s in samples])
    return batch


def to_device(batch: dict, device) -> dict:
    """The model's keyword arguments on ``device`` (the bookkeeping keys dropped)."""
    return {
        k: v.to(device) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
        if k not in ("ids", "num_skipped")
    }


def extract_features(
    data: PolicyData, processor, simulator, store_path, cameras: list[str], *, precision: str = "bf16"
):
    """Write the Wan grids of ``cameras``' centre-cropped policy images of every episode into a feature store
    (item :func:`feature_item`, one entry per episode, frame indices 0..T-1). Returns the store path."""
    from vega3d.store import StoreWriter, make_store_config

    stats = processor.statistics
    dataset = open_dataset(data, stats.action_dim, stats.proprio_dim, cameras)
    writer = StoreWriter(store_path, make_store_config(simulator, precision))
    for e in range(min(len(dataset), data.max_episodes or len(dataset))):
        episode = dataset.episode(e, cameras=[data.camera_keys[c] for c in cameras])
        for c in cameras:
            frames = np.stack([policy_image(f, processor.image_size, None, False, False)
                               for f in episode.images[data.camera_keys[c]]])  # fmt: skip
            writer.write(feature_item(episode.index, c), list(range(len(frames))), simulator.extract(frames),
                         selection="all", source=str(data.dataset))  # fmt: skip
    writer.write_index()
    return Path(store_path)
