"""LeRobot-format datasets without ``lerobot``: a writer for harness episodes and a reader for training.

**Format written: LeRobot codebase v3.0** (the format of ``lerobot`` >= 0.4 and of the LIBERO
datasets on the Hub, e.g. ``lerobot/libero``), with one data file and one MP4 per camera *per
episode* (v3.0 allows several episodes per file; its readers find episodes through the episode
table, so one per file is valid):

```
meta/info.json                                   codebase_version "v3.0", fps, features, path templates
meta/tasks.parquet                               task (pandas index) -> task_index
meta/episodes/chunk-000/file-000.parquet         one row per episode: tasks, length, data/chunk_index,
                                                 data/file_index, dataset_from_index, dataset_to_index,
                                                 videos/<key>/{chunk_index,file_index,from_timestamp,to_timestamp}
meta/stats.json                                  min/max/mean/std/count/q01/q99 of observation.state and action
data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet              per frame: observation.state, action,
                                                 timestamp, frame_index, episode_index, index, task_index
videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4   H.264 (libx264), yuv420p
```

Features follow ``lerobot/libero``: ``observation.images.image`` (agentview) and
``observation.images.image2`` (wrist), upright (already flipped, as the policy sees them);
``observation.state`` = the 8-D OFT proprio; ``action`` = the 7-D command sent to ``env.step``
(LIBERO convention: gripper -1 open, +1 close). Episode ``e`` lives in chunk ``e // 1000``, file
``e % 1000``.

**Formats read** (:class:`LeRobotDataset`): v3.0 (several episodes per file allowed: rows by
``episode_index``, video frames by the episode's timestamps) and v2.0/v2.1
(``data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet``,
``videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4``,
``meta/episodes.jsonl``, ``meta/tasks.jsonl``); camera features stored as videos or as images in
the parquet (``{"bytes": ...}`` PNG/JPEG).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from vega3d.config import FileRecord, parse
from vega3d.errors import Vega3DError
from vega3d.files import read_json, write_json

CODEBASE_VERSION = "v3.0"
READABLE_VERSIONS = ("v2.0", "v2.1", "v3.0")
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
#: vega3d camera name -> LeRobot feature key (as lerobot/libero).
CAMERA_KEYS = {"agentview": "observation.images.image", "wrist": "observation.images.image2"}
STATE_KEY, ACTION_KEY = "observation.state", "action"
STATE_NAMES = ["eef_x", "eef_y", "eef_z", "eef_axis_angle_x", "eef_axis_angle_y", "eef_axis_angle_z",
               "gripper_qpos_left", "gripper_qpos_right"]  # fmt: skip
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
#: Video encoding: codec, pixel format, libx264 options (crf 18: visually lossless at 256 px).
VIDEO_CODEC, VIDEO_PIX_FMT, VIDEO_OPTIONS = "libx264", "yuv420p", {"crf": "18", "preset": "medium"}
STAGED_FRAMES, STAGED_META = "frames.parquet", "episode.json"


def _modules(names: tuple, package: str, extra: str) -> list:
    """The modules ``names``; a :class:`Vega3DError` naming ``package`` and its vega3d extra when missing."""
    try:
        return [importlib.import_module(name) for name in names]
    except ImportError:
        raise Vega3DError(f"LeRobot datasets need {package}: pip install 'vega3d[{extra}]'") from None


def _pa():
    return _modules(("pyarrow", "pyarrow.parquet"), "pyarrow", "eval")


def _av():
    return _modules(("av",), "PyAV", "video")[0]


def encode_video(path, frames: np.ndarray, fps: int, codec: str = VIDEO_CODEC, options: dict | None = None) -> Path:
    """(T, H, W, 3) uint8 -> an MP4 with one frame per ``1/fps`` s (pts = frame index), PyAV."""
    av = _av()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps, options=dict(VIDEO_OPTIONS if options is None else options))
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = VIDEO_PIX_FMT
        stream.codec_context.time_base = Fraction(1, fps)
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def decode_video(path, start: float | None = None, end: float | None = None, fps: float | None = None) -> np.ndarray:
    """Frames of an MP4 as (N, H, W, 3) uint8; with ``start``/``end`` (seconds) only those whose
    timestamp t satisfies ``start - 0.5/fps <= t < end - 0.5/fps``."""
    av = _av()
    frames = []
    tol = 0.5 / fps if fps else 0.0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else 0.0
                if start is not None and t < start - tol:
                    continue
                if end is not None and t >= end - tol:
                    break
                frames.append(frame.to_ndarray(format="rgb24"))
    except av.error.FFmpegError as err:
        raise Vega3DError(f"{path}: cannot read video ({type(err).__name__}: {err})") from None
    if not frames:
        raise Vega3DError(f"{path}: no frames between {start} s and {end} s")
    return np.stack(frames)


# --- writing ---------------------------------------------------------------------------------------------


def stage_episode(folder, *, images: dict[str, np.ndarray], state: np.ndarray, action: np.ndarray, task: str,
                  fps: int) -> Path:  # fmt: skip
    """Write one episode's files into ``folder`` (an MP4 per camera, the per-frame table, a small JSON),
    for :meth:`LeRobotWriter.commit` to move into the dataset. ``images``: vega3d camera name
    (:data:`CAMERA_KEYS`) -> (T, H, W, 3) uint8; ``state`` (T, 8); ``action`` (T, 7)."""
    pa, pq = _pa()
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    length = len(state)
    if len(action) != length or any(len(v) != length for v in images.values()):
        raise Vega3DError(f"episode {task!r}: {length} states, {len(action)} actions, "
                          f"{ {k: len(v) for k, v in images.items()} } frames; expected one length")  # fmt: skip
    unknown = sorted(set(images) - set(CAMERA_KEYS))
    if unknown:
        raise Vega3DError(f"episode {task!r}: cameras {unknown}; expected some of {sorted(CAMERA_KEYS)}")
    for name, frames in images.items():
        encode_video(folder / f"{name}.mp4", frames, fps)
    table = pa.table({
        STATE_KEY: _fixed_list(pa, state), ACTION_KEY: _fixed_list(pa, action),
        "timestamp": pa.array(np.arange(length, dtype=np.float32) / np.float32(fps), pa.float32()),
        "frame_index": pa.array(np.arange(length, dtype=np.int64)),
    })  # fmt: skip
    pq.write_table(table, folder / STAGED_FRAMES)
    meta = {"task": task, "length": length, "fps": fps, "cameras": sorted(images),
            "shapes": {k: list(v.shape[1:]) for k, v in images.items()}}  # fmt: skip
    write_json(folder / STAGED_META, meta)
    return folder


def _fixed_list(pa, values: np.ndarray):
    values = np.asarray(values, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), values.shape[1])


class LeRobotWriter:
    """Appends episodes to a LeRobot v3.0 dataset folder (created, or reopened to continue).

    ``add_episode`` writes an episode in this process; the evaluation workers instead
    :func:`stage_episode` into :attr:`staging_root` and the parent :meth:`commit`\\ s, so only one
    process touches the metadata. ``meta/`` is rewritten after every episode (a crash loses at
    most the episode being committed); :meth:`close` writes ``meta/stats.json``. An episode
    committed with a ``key`` already in the dataset is not added twice."""

    def __init__(self, root, *, fps: int, robot_type: str = "panda"):
        self.root = Path(root)
        self.fps, self.robot_type = int(fps), robot_type
        self.staging_root = self.root / ".staging"
        self.episodes: list[dict] = []
        self.tasks: dict[str, int] = {}
        self.features: dict | None = None
        info_path = self.root / "meta" / "info.json"
        if info_path.exists():
            info = read_json(info_path, "LeRobot dataset info")
            if info.get("codebase_version") != CODEBASE_VERSION or int(info.get("fps", 0)) != self.fps:
                raise Vega3DError(f"{info_path}: codebase {info.get('codebase_version')} at {info.get('fps')} fps; "
                                  f"can only append to {CODEBASE_VERSION} at {self.fps} fps")  # fmt: skip
            _, pq = _pa()
            self.features = info["features"]
            self.episodes = pq.read_table(self.root / EPISODES_PATH).to_pylist()
            tasks = pq.read_table(self.root / "meta" / "tasks.parquet").to_pylist()
            self.tasks = {row["task"]: int(row["task_index"]) for row in tasks}
        self.staging_root.mkdir(parents=True, exist_ok=True)

    @property
    def total_frames(self) -> int:
        return self.episodes[-1]["dataset_to_index"] if self.episodes else 0

    def keys(self) -> set[str]:
        return {e["vega3d/key"] for e in self.episodes if e.get("vega3d/key")}

    def add_episode(self, *, images: dict[str, np.ndarray], state: np.ndarray, action: np.ndarray, task: str,
                    key: str | None = None) -> int:  # fmt: skip
        """Write one episode (arrays as in :func:`stage_episode`); returns its episode index."""
        folder = stage_episode(self.staging_root / f"local-{len(self.episodes)}", images=images, state=state,
                               action=action, task=task, fps=self.fps)  # fmt: skip
        return self.commit(folder, key=key)

    def commit(self, folder, key: str | None = None) -> int:
        """Move a staged episode into the dataset and update ``meta/``; returns its episode index
        (the existing one when ``key`` was committed before)."""
        pa, pq = _pa()
        folder = Path(folder)
        if key is not None:
            for e in self.episodes:
                if e.get("vega3d/key") == key:
                    shutil.rmtree(folder, ignore_errors=True)
                    return int(e["episode_index"])
        meta = read_json(folder / STAGED_META, "staged episode")
        info_path = self.root / "meta" / "info.json"
        if int(meta["fps"]) != self.fps:
            raise Vega3DError(f"{folder}: episode at {meta['fps']} fps; the dataset ({info_path}) is at {self.fps} fps")
        features = self._features(meta)
        known = features if self.features is None else self.features
        differ = [k for k in sorted(features.keys() | known.keys()) if features.get(k) != known.get(k)]
        if differ:
            raise Vega3DError(f"{folder}: feature {differ[0]!r} is {features.get(differ[0])} in the episode, "
                              f"{known.get(differ[0])} in the dataset ({info_path})")  # fmt: skip
        self.features = features
        index = len(self.episodes)
        chunk, file = divmod(index, CHUNKS_SIZE)
        length = int(meta["length"])
        task_index = self.tasks.setdefault(meta["task"], len(self.tasks))
        start = self.total_frames
        frames = pq.read_table(folder / STAGED_FRAMES)
        frames = frames.append_column("episode_index", pa.array(np.full(length, index, np.int64)))
        frames = frames.append_column("index", pa.array(np.arange(start, start + length, dtype=np.int64)))
        frames = frames.append_column("task_index", pa.array(np.full(length, task_index, np.int64)))
        data_path = self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(frames, data_path)
        episode = {"episode_index": index, "tasks": [meta["task"]], "length": length,
                   "data/chunk_index": chunk, "data/file_index": file,
                   "dataset_from_index": start, "dataset_to_index": start + length}  # fmt: skip
        for name in meta["cameras"]:
            video_key = CAMERA_KEYS[name]
            target = self.root / VIDEO_PATH.format(video_key=video_key, chunk_index=chunk, file_index=file)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(folder / f"{name}.mp4", target)
            episode |= {f"videos/{video_key}/chunk_index": chunk, f"videos/{video_key}/file_index": file,
                        f"videos/{video_key}/from_timestamp": 0.0,
                        f"videos/{video_key}/to_timestamp": length / self.fps}  # fmt: skip
        episode |= {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0, "vega3d/key": key}
        self.episodes.append(episode)
        self._write_meta()
        shutil.rmtree(folder, ignore_errors=True)
        return index

    def _features(self, meta: dict) -> dict:
        features = {}
        for name in meta["cameras"]:
            h, w, c = meta["shapes"][name]
            features[CAMERA_KEYS[name]] = {
                "dtype": "video", "shape": [h, w, c], "names": ["height", "width", "channels"],
                "info": {"video.height": h, "video.width": w, "video.codec": "h264", "video.pix_fmt": VIDEO_PIX_FMT,
                         "video.is_depth_map": False, "video.fps": self.fps, "video.channels": c, "has_audio": False},
            }  # fmt: skip
        features[STATE_KEY] = {"dtype": "float32", "shape": [len(STATE_NAMES)], "names": STATE_NAMES, "fps": self.fps}
        features[ACTION_KEY] = {
            "dtype": "float32",
            "shape": [len(ACTION_NAMES)],
            "names": ACTION_NAMES,
            "fps": self.fps,
        }
        for name, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                            ("index", "int64"), ("task_index", "int64")):  # fmt: skip
            features[name] = {"dtype": dtype, "shape": [1], "names": None, "fps": self.fps}
        return features

    def _write_meta(self) -> None:
        pa, pq = _pa()
        meta = self.root / "meta"
        (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
        _write_parquet_atomic(pq, pa.Table.from_pylist(self.episodes), self.root / EPISODES_PATH)
        tasks = sorted(self.tasks.items(), key=lambda kv: kv[1])
        table = pa.table({"task_index": pa.array([i for _, i in tasks], pa.int64()), "task": [t for t, _ in tasks]})
        pandas_meta = {"index_columns": ["task"], "column_indexes": [], "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None}],
            "creator": {"library": "vega3d"}, "pandas_version": "2.2.0"}  # fmt: skip
        table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
        _write_parquet_atomic(pq, table, meta / "tasks.parquet")
        n = len(self.episodes)
        info = {"codebase_version": CODEBASE_VERSION, "robot_type": self.robot_type, "total_episodes": n,
                "total_frames": self.total_frames, "total_tasks": len(self.tasks), "chunks_size": CHUNKS_SIZE,
                "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": self.fps,
                "splits": {"train": f"0:{n}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH,
                "features": self.features}  # fmt: skip
        write_json(meta / "info.json", info)

    def close(self) -> dict:
        """Write ``meta/stats.json`` (from every data file) and remove the staging folder; returns the stats."""
        stats = compute_stats(self.root) if self.episodes else {}
        if stats:
            write_json(self.root / "meta" / "stats.json", stats)
        shutil.rmtree(self.staging_root, ignore_errors=True)
        return stats


def _write_parquet_atomic(pq, table, path: Path) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def compute_stats(root) -> dict:
    """min/max/mean/std/count and the 1st/99th percentiles (OFT's BOUNDS_Q99 normalisation) of
    ``observation.state`` and ``action`` over every frame of the dataset at ``root``."""
    dataset = LeRobotDataset(root)
    columns = dataset.read_columns([STATE_KEY, ACTION_KEY])
    stats = {}
    for key, values in columns.items():
        v = values.astype(np.float64)
        stats[key] = {"min": v.min(0).tolist(), "max": v.max(0).tolist(), "mean": v.mean(0).tolist(),
                      "std": v.std(0).tolist(), "count": [len(v)], "q01": np.quantile(v, 0.01, axis=0).tolist(),
                      "q99": np.quantile(v, 0.99, axis=0).tolist()}  # fmt: skip
    return stats


# --- reading ---------------------------------------------------------------------------------------------


class _Feature(FileRecord):
    """A feature of ``meta/info.json`` (names, info, ...: not read)."""

    dtype: str  # "video", "image" (PNG/JPEG bytes in the parquet), "float32", "int64", ...
    shape: list[int] = Field(min_length=1)  # per frame: (H, W, C) for cameras, (D,) for vectors


class _Info(FileRecord):
    """``meta/info.json``, the fields the reader uses (totals, splits, ...: not read)."""

    codebase_version: Literal[READABLE_VERSIONS]  # LeRobot's format version
    fps: float = Field(gt=0)  # frames per second of the data and videos
    features: dict[str, _Feature]  # feature key -> dtype and shape
    data_path: str  # data file template (module docstring)
    video_path: str | None = None  # video file template (None: no video features)
    chunks_size: int = Field(CHUNKS_SIZE, ge=1)  # episodes per chunk folder (v2.x paths)


@dataclass
class LeRobotEpisode:
    """One episode: ``images`` feature key -> (T, H, W, 3) uint8, ``state`` (T, S) and ``action`` (T, A) float32,
    ``timestamps`` (T,) seconds, the ``task`` text."""

    index: int
    task: str
    images: dict[str, np.ndarray]
    state: np.ndarray
    action: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.action)


class LeRobotDataset:
    """Read a local LeRobot-format dataset (v2.0, v2.1 or v3.0; module docstring) with pyarrow and PyAV.

    ``state_key``/``action_key``: the per-frame vectors to return; ``action_dim``, if given, is
    checked against ``meta/info.json`` (a :class:`Vega3DError` naming both sizes otherwise)."""

    def __init__(
        self, root, *, state_key: str = STATE_KEY, action_key: str = ACTION_KEY, action_dim: int | None = None
    ):
        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        self.info = read_json(info_path, "LeRobot dataset info")
        info = parse(_Info, self.info, info_path)
        self.version, self.fps, self.chunks_size = info.codebase_version, float(info.fps), info.chunks_size
        self.features = self.info["features"]
        for key in (state_key, action_key):
            if key not in self.features:
                raise Vega3DError(f"{info_path}: no feature {key!r}; features are {', '.join(self.features)}")
        self.state_key, self.action_key = state_key, action_key
        found = int(self.features[action_key]["shape"][0])
        if action_dim is not None and found != action_dim:
            raise Vega3DError(f"{info_path}: {action_key} has {found} dimensions; expected {action_dim}")
        self.camera_keys = [k for k, f in self.features.items() if f["dtype"] in ("video", "image")]
        self._episodes, self._tasks = self._read_index()

    def _read_index(self) -> tuple[list[dict], dict[int, str]]:
        _, pq = _pa()
        meta = self.root / "meta"
        if self.version == "v3.0":
            files = sorted((meta / "episodes").glob("chunk-*/file-*.parquet"))
            if not files:
                raise Vega3DError(f"{meta / 'episodes'}: no episode tables (expected chunk-XXX/file-XXX.parquet)")
            episodes = [row for f in files for row in pq.read_table(f).to_pylist()]
            tasks = {
                int(r["task_index"]): r.get("task", r.get("__index_level_0__"))
                for r in pq.read_table(meta / "tasks.parquet").to_pylist()
            }
        else:
            episodes = _read_jsonl(meta / "episodes.jsonl")
            tasks = {int(r["task_index"]): r["task"] for r in _read_jsonl(meta / "tasks.jsonl")}
        episodes.sort(key=lambda e: int(e["episode_index"]))
        return episodes, tasks

    def __len__(self) -> int:
        return len(self._episodes)

    def __iter__(self):
        for i in range(len(self)):
            yield self.episode(i)

    @property
    def tasks(self) -> dict[int, str]:
        return dict(self._tasks)

    def _data_file(self, episode: dict) -> Path:
        e = int(episode["episode_index"])
        if self.version == "v3.0":
            return self.root / self.info["data_path"].format(chunk_index=int(episode["data/chunk_index"]),
                                                             file_index=int(episode["data/file_index"]))  # fmt: skip
        chunk = e // self.chunks_size
        return self.root / self.info["data_path"].format(episode_chunk=chunk, episode_index=e)

    def _rows(self, episode: dict):
        _, pq = _pa()
        path, e = self._data_file(episode), int(episode["episode_index"])
        if not path.exists():
            raise Vega3DError(f"{path}: data file of episode {e} is missing")
        table = pq.read_table(path)
        rows = table.filter(np.asarray(table.column("episode_index").to_numpy()) == e)
        if rows.num_rows != int(episode["length"]):
            raise Vega3DError(
                f"{path}: {rows.num_rows} rows of episode {e}; the episode table says {episode['length']}"
            )
        return rows

    def read_columns(self, keys: list[str]) -> dict[str, np.ndarray]:
        """``keys`` (per-frame vector features) over all episodes, concatenated: key -> (N, D) float32."""
        out = {k: [] for k in keys}
        for episode in self._episodes:
            rows = self._rows(episode)
            for k in keys:
                out[k].append(_column(rows, k))
        return {k: np.concatenate(v) for k, v in out.items()}

    def episode(self, i: int, cameras: list[str] | None = None) -> LeRobotEpisode:
        """Episode ``i`` (position in episode-index order) with the given camera features (default: all)."""
        if not 0 <= i < len(self):
            raise Vega3DError(f"{self.root}: episode {i} asked for; the dataset has {len(self)}")
        cameras = self.camera_keys if cameras is None else cameras
        unknown = [key for key in cameras if key not in self.camera_keys]
        if unknown:
            raise Vega3DError(
                f"{self.root}: no camera feature {unknown[0]!r}; cameras are {', '.join(self.camera_keys)}"
            )
        episode = self._episodes[i]
        e = int(episode["episode_index"])
        rows = self._rows(episode)
        images = {}
        for key in cameras:
            if self.features[key]["dtype"] == "image":
                images[key] = _decode_images(rows.column(key).to_pylist())
            else:
                images[key] = self._video_frames(episode, key)
            if len(images[key]) != rows.num_rows:
                raise Vega3DError(
                    f"{self.root}: episode {e} camera {key}: {len(images[key])} frames for {rows.num_rows} rows"
                )
        task_index = int(np.asarray(rows.column("task_index").to_numpy())[0])
        tasks = episode.get("tasks")
        task = self._tasks.get(task_index) or (tasks[0] if tasks else "")
        return LeRobotEpisode(e, task, images, _column(rows, self.state_key), _column(rows, self.action_key),
                              np.asarray(rows.column("timestamp").to_numpy(), np.float64))  # fmt: skip

    def _video_frames(self, episode: dict, key: str) -> np.ndarray:
        e = int(episode["episode_index"])
        if self.version == "v3.0":
            path = self.root / self.info["video_path"].format(
                video_key=key, chunk_index=int(episode[f"videos/{key}/chunk_index"]),
                file_index=int(episode[f"videos/{key}/file_index"]))  # fmt: skip
            start, end = float(episode[f"videos/{key}/from_timestamp"]), float(episode[f"videos/{key}/to_timestamp"])
        else:
            chunk = e // self.chunks_size
            path = self.root / self.info["video_path"].format(episode_chunk=chunk, video_key=key, episode_index=e)
            start, end = None, None
        return decode_video(path, start, end, self.fps)


def _column(rows, key: str) -> np.ndarray:
    column = rows.column(key).combine_chunks()
    if hasattr(column, "flatten") and hasattr(column.type, "value_type"):
        values = np.asarray(column.flatten().to_numpy(zero_copy_only=False), np.float32)
        return values.reshape(rows.num_rows, -1)
    return np.asarray(column.to_numpy(zero_copy_only=False), np.float32).reshape(rows.num_rows, -1)


def _decode_images(cells: list) -> np.ndarray:
    import io

    from PIL import Image

    out = []
    for cell in cells:
        data = cell["bytes"] if isinstance(cell, dict) else cell
        with Image.open(io.BytesIO(data)) as im:
            out.append(np.asarray(im.convert("RGB")))
    return np.stack(out)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        raise Vega3DError(f"{path}: missing (a LeRobot v2.x dataset keeps its episode and task lists there)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
