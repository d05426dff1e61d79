"""Frame selection for the Video-3D LLM setting: uniform and maximum coverage.

**Uniform** (the released checkpoints and VEGA-3D): ``np.linspace(0, n - 1, num, dtype=int)``
over the scan's frame list (:func:`vega3d.scenes.sample_frames`). The release repeats frames
when a scan has fewer than ``num``; here that is an error unless ``repeat=True``.

**Maximum coverage** (``mc-ratio90`` / ``mc-ratio95``; ``max_coverage_sampling.py``), offline:

1. candidates: every 2nd frame of the list (all frames if that leaves fewer than 32);
2. each candidate's depth → world coordinates (axis-aligned) → ``round(xyz / 0.1)`` voxel set,
   intersected with the scene's point-cloud voxels (``pcd_discrete_0.1.pkl``: ``round(xyz / 0.1)``
   of the aligned scan points);
3. greedy set cover: pick the candidate adding the most new scene voxels, ties broken at random
   (here: a seeded :class:`numpy.random.Generator`, the release: unseeded ``random.choice``),
   until 32 frames (or no candidate) are left — zero-gain picks included, as released;
4. record ``{video_id, frame_files, voxel_nums, num_all_voxels, num_select_voxels}`` in greedy
   order, ``voxel_nums`` the per-pick gains, ``num_all_voxels`` = scene voxels seen by any candidate.

At load time (:func:`frames_for_ratio`): frames in greedy order until the running sum of
``voxel_nums`` reaches ``ratio * num_all_voxels``, capped at ``frames_upbound``, sorted by index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vega3d.errors import Vega3DError
from vega3d.scenes import sample_frames

#: ``max_coverage_sampling.py`` settings.
MC_VOXEL_SIZE = 0.1
MC_MAX_FRAMES = 32
MC_CANDIDATE_STRIDE = 2
#: ``frame_sampling_strategy`` names of the release and their ratios.
MC_RATIOS = {"mc-ratio90": 0.9, "mc-ratio95": 0.95, "mc": 1.0}

_OFFSET = 1 << 20  # voxel keys: |index| < 2^20 (104 km at 0.1 m)


def uniform_frames(num_available: int, num: int, *, repeat: bool = False, what: str = "scan") -> list[int]:
    """``num`` positions of ``num_available`` by the linspace-floor rule.

    More frames asked for than exist is an error naming ``what`` unless ``repeat=True``, which
    returns the release's ``np.linspace(0, n - 1, num, dtype=int)`` with its repeated positions.
    """
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise Vega3DError(f"{what}: the number of frames must be a positive int, got {num!r}")
    if num > num_available and not repeat:
        raise Vega3DError(
            f"{what}: {num} frames requested but the scan has only {num_available} "
            f"(the release repeats frames then; pass repeat=True for that)"
        )
    if num > num_available:
        return np.linspace(0, num_available - 1, int(num), dtype=int).tolist()
    return sample_frames(int(num_available), int(num))


def candidate_positions(
    num_frames: int, stride: int = MC_CANDIDATE_STRIDE, min_count: int = MC_MAX_FRAMES
) -> list[int]:
    """Positions in the frame list that maximum coverage considers: every ``stride``-th, or all
    when that leaves fewer than ``min_count``."""
    every = list(range(0, num_frames, stride))
    return every if len(every) >= min_count else list(range(num_frames))


def voxel_keys(points, voxel_size: float = MC_VOXEL_SIZE) -> np.ndarray:
    """Unique int64 keys of the voxels ``round(points / voxel_size)`` (round half to even, as
    ``torch.round``) of points (..., 3); non-finite points are dropped."""
    p = torch.as_tensor(np.asarray(points) if not isinstance(points, torch.Tensor) else points)
    p = p.reshape(-1, 3)
    p = p[torch.isfinite(p).all(dim=1)]
    idx = (p / voxel_size).round().to(torch.int64).numpy()
    return encode_voxels(idx)


def encode_voxels(idx) -> np.ndarray:
    """Unique int64 keys of integer voxel indices (K, 3)."""
    idx = np.asarray(idx, dtype=np.int64).reshape(-1, 3)
    if idx.size and np.abs(idx).max() >= _OFFSET:
        raise Vega3DError(f"voxel indices must be below {_OFFSET} in magnitude, got {np.abs(idx).max()}")
    o = idx + _OFFSET
    return np.unique((o[:, 0] << 42) | (o[:, 1] << 21) | o[:, 2])


@dataclass(frozen=True)
class Coverage:
    """Greedy result: candidate positions in pick order, per-pick gains, and the totals."""

    order: list[int]
    voxel_nums: list[int]
    num_all_voxels: int
    num_select_voxels: int


def max_coverage(
    frame_voxels: Sequence[np.ndarray],
    scene_voxels: np.ndarray | None = None,
    *,
    max_frames: int = MC_MAX_FRAMES,
    seed: int = 0,
) -> Coverage:
    """Greedy voxel set cover (module docstring, step 3).

    ``frame_voxels``: per candidate, its voxel keys (:func:`voxel_keys`); ``scene_voxels``: the
    scene's point-cloud voxel keys, or None to count every voxel a candidate sees. Returns
    positions into ``frame_voxels``. Deterministic for a seed; ties among equal gains are drawn
    uniformly by ``numpy.random.default_rng(seed)``.
    """
    from scipy import sparse

    n = len(frame_voxels)
    if n == 0:
        raise Vega3DError("max_coverage: no candidate frames")
    sets = [np.asarray(v, dtype=np.int64) for v in frame_voxels]
    if scene_voxels is not None:
        scene = np.unique(np.asarray(scene_voxels, dtype=np.int64))
        sets = [v[np.isin(v, scene, assume_unique=True)] for v in sets]
    universe, inverse = np.unique(np.concatenate(sets), return_inverse=True)
    lengths = np.array([len(v) for v in sets])
    rows = np.repeat(np.arange(n), lengths)
    incidence = sparse.csr_matrix((np.ones(len(rows), np.int64), (rows, inverse)), shape=(n, len(universe)))
    rng = np.random.default_rng(seed)
    covered = np.zeros(len(universe), dtype=np.int64)
    remaining = np.ones(n, dtype=bool)
    order, gains = [], []
    for _ in range(min(int(max_frames), n)):
        gain = incidence @ (1 - covered)
        gain = np.where(remaining, gain, -1)
        best = gain.max()
        tied = np.flatnonzero(gain == best)
        pick = int(tied[rng.integers(len(tied))]) if len(tied) > 1 else int(tied[0])
        order.append(pick)
        gains.append(int(best))
        remaining[pick] = False
        covered[incidence.indices[incidence.indptr[pick] : incidence.indptr[pick + 1]]] = 1
    return Coverage(order, gains, int(len(universe)), int(covered.sum()))


@dataclass(frozen=True)
class SelectFrames:
    """One record of ``scannet_select_frames.json`` (module docstring)."""

    video_id: str
    frame_files: tuple[str, ...]
    voxel_nums: tuple[int, ...]
    num_all_voxels: int
    num_select_voxels: int

    @property
    def frame_ids(self) -> list[int]:
        """Frame numbers of ``frame_files`` in greedy order (``int`` of the file stem, as released)."""
        return [frame_id_of(f) for f in self.frame_files]

    def to_json(self) -> dict:
        return {
            "video_id": self.video_id,
            "frame_files": list(self.frame_files),
            "voxel_nums": list(self.voxel_nums),
            "num_all_voxels": self.num_all_voxels,
            "num_select_voxels": self.num_select_voxels,
        }


def frame_id_of(frame_file: str) -> int:
    """Frame number of a frame path: ``int`` of the file name without extension (``00120.jpg`` → 120)."""
    stem = str(frame_file).replace("\\", "/").rsplit("/", 1)[-1].split(".")[0]
    if not stem.isdecimal():
        raise Vega3DError(f"frame file {frame_file!r}: expected a name <digits>.jpg")
    return int(stem)


def frames_for_ratio(record: SelectFrames, ratio: float = 1.0, frames_upbound: int = MC_MAX_FRAMES) -> list[int]:
    """Frame ids to load for one scene (``sample_frame_files_mc``): the first ``frames_upbound``
    in greedy order, cut where the running sum of ``voxel_nums`` first reaches
    ``ratio * num_all_voxels`` (``ratio`` 1.0: no cut), sorted by frame id."""
    upbound = isinstance(frames_upbound, (int, np.integer)) and not isinstance(frames_upbound, bool)
    if not (0 < ratio <= 1 and upbound and frames_upbound >= 1):
        raise Vega3DError(
            f"frames_for_ratio: expected a ratio in (0, 1] and a positive int frames_upbound, got {ratio!r}, "
            f"{frames_upbound!r}"
        )
    ids = record.frame_ids[: int(frames_upbound)]
    nums = record.voxel_nums[: int(frames_upbound)]
    if ratio != 1.0:
        kept, total = [], 0
        for fid, num in zip(ids, nums):
            kept.append(fid)
            total += num
            if total >= record.num_all_voxels * ratio:
                break
        ids = kept
    return sorted(ids)
