"""The released ``data/`` folder of Video-3D LLM: posed images, boxes, frame selection — one loader.

Layout (the release's; :func:`vega3d.video3d.write_tiny_dataset` writes the same)::

    data/scannet/posed_images/<scene>/NNNNN.jpg|.png|.txt, intrinsic.txt, depth_intrinsic.txt
    data/embodiedscan/embodiedscan_infos_{train,val,test}.pkl   axis alignment, frame list
    data/metadata/scannet_train_gt_box.json, scannet_val_pred_box.json,
                  scannet_select_frames.json, pcd_discrete_0.1.pkl
    data/processed/<task>_<split>_llava_style.json

:func:`read_posed_frames` reads frames of one ``posed_images/<scene>/`` folder (colour
optional) with the checks of issue 9 (a frame without depth, pose or intrinsics, a non-finite
pose: one line naming the file). :class:`Video3DData` puts the pieces together: for a scan it
picks frames (uniform / maximum coverage) and returns colour frames and world-coordinate maps.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vega3d.errors import Vega3DError
from vega3d.scenes.loaders import (
    DEFAULT_DEPTH_SCALE,
    read_axis_align,
    read_color,
    read_depth,
    read_depth_scale,
    read_intrinsics,
    read_pose,
)
from vega3d.video3d.formats import ScanInfo, read_boxes, read_embodiedscan_infos, read_select_frames
from vega3d.video3d.frames import (
    MC_CANDIDATE_STRIDE,
    MC_MAX_FRAMES,
    MC_RATIOS,
    MC_VOXEL_SIZE,
    SelectFrames,
    candidate_positions,
    encode_voxels,
    frames_for_ratio,
    max_coverage,
    uniform_frames,
    voxel_keys,
)
from vega3d.video3d.geometry import IMAGE_SIZE, unproject_depth, world_coordinate_map

logger = logging.getLogger("vega3d.video3d")

_FRAME = re.compile(r"^(\d+)\.jpg$")
SAMPLINGS = ("uniform", *MC_RATIOS)


def list_posed_frames(scene_dir) -> list[int]:
    """Frame ids of a ``posed_images/<scene>/`` folder: its ``<digits>.jpg`` files, numerically sorted
    (the EmbodiedScan ``images`` list order)."""
    root = Path(scene_dir)
    if not root.is_dir():
        raise Vega3DError(f"{root}: scan folder does not exist")
    ids = sorted(int(m.group(1)) for p in root.iterdir() if (m := _FRAME.match(p.name)))
    if not ids:
        raise Vega3DError(f"{root}: no colour frames <digits>.jpg (expected the posed_images layout)")
    return ids


def _frame_path(root: Path, frame_id: int, ext: str, digits: dict[int, str]) -> Path:
    name = digits.get(frame_id, f"{frame_id:05d}")
    return root / f"{name}.{ext}"


@dataclass(frozen=True)
class PosedFrames:
    """Frames of one scan: ``depth`` (N, Hd, Wd) float32 metres, ``poses`` (N, 4, 4) float64
    camera-to-world in the scan's unaligned world, ``intrinsics_depth`` / ``intrinsics_color`` (3, 3)
    (library convention: pixel centres at +0.5), ``color`` (N, H, W, 3) uint8 or None,
    ``axis_align`` (4, 4) float64 or None."""

    scene_dir: Path
    frame_ids: tuple[int, ...]
    depth: torch.Tensor
    poses: torch.Tensor
    intrinsics_depth: torch.Tensor
    intrinsics_color: torch.Tensor | None
    color: torch.Tensor | None
    axis_align: torch.Tensor | None

    def world(self, size: int = IMAGE_SIZE, strategy: str = "resize") -> torch.Tensor:
        """(N, size, size, 3) float32 world-coordinate maps (:func:`world_coordinate_map`) in the
        aligned frame; needs ``axis_align``."""
        if self.axis_align is None:
            raise Vega3DError(
                f"{self.scene_dir}: no axis alignment for this scan (axis_align_matrix.txt, <scene>.txt or the "
                f"EmbodiedScan infos); world coordinates would not match the boxes"
            )
        return world_coordinate_map(
            self.depth, self.intrinsics_depth, self.poses, self.axis_align, size, strategy=strategy
        )


def read_posed_frames(
    scene_dir,
    frame_ids: Sequence[int],
    *,
    color: bool = True,
    axis_align=None,
    depth_intrinsics=None,
) -> PosedFrames:
    """Read frames ``frame_ids`` of a ``posed_images/<scene>/`` folder.

    Every frame needs ``NNNNN.png`` (uint16 depth, mm or ``depth_scale.txt`` units), ``NNNNN.txt``
    (finite rigid 4x4 camera-to-world) and, with ``color``, ``NNNNN.jpg``; the folder needs
    ``depth_intrinsic.txt`` unless ``depth_intrinsics`` (3, 3, library convention) is given (the
    release takes it from the EmbodiedScan infos), and ``intrinsic.txt`` with ``color``.
    ``axis_align``: (4, 4), else read from the folder (``axis_align_matrix.txt`` or ScanNet's
    ``<scene>.txt``), else None. Errors name the file.
    """
    root = Path(scene_dir)
    if not root.is_dir():
        raise Vega3DError(f"{root}: scan folder does not exist")
    ids = [int(f) for f in frame_ids]
    if not ids:
        raise Vega3DError(f"{root}: no frames asked for")
    digits = {int(m.group(1)): m.group(1) for p in root.iterdir() if (m := re.match(r"^(\d+)\.\w+$", p.name))}
    depths, poses, colors = _read_frames(root, ids, digits, color)
    k_depth, k_color = _intrinsics(root, depths[0].shape, colors[0].shape[:2] if color else None, depth_intrinsics)
    scale_file = root / "depth_scale.txt"
    scale = read_depth_scale(scale_file) if scale_file.is_file() else DEFAULT_DEPTH_SCALE
    align = (
        torch.as_tensor(np.asarray(axis_align, dtype=np.float64)) if axis_align is not None else read_axis_align(root)
    )
    return PosedFrames(
        scene_dir=root,
        frame_ids=tuple(ids),
        depth=torch.from_numpy(np.stack(depths).astype(np.float32)) / np.float32(scale),
        poses=torch.from_numpy(np.stack(poses)),
        intrinsics_depth=k_depth,
        intrinsics_color=k_color,
        color=torch.from_numpy(np.stack(colors)) if color else None,
        axis_align=align,
    )


def _read_frames(root: Path, ids: list[int], digits: dict, color: bool) -> tuple[list, list, list]:
    """Each frame's depth, finite pose and (with ``color``) colour image, every file checked; one
    depth size and one colour size across the frames."""
    depths, poses, colors = [], [], []
    for fid in ids:
        for ext, what in (("png", "depth"), ("txt", "pose")) + ((("jpg", "colour"),) if color else ()):
            path = _frame_path(root, fid, ext, digits)
            if not path.is_file():
                raise Vega3DError(f"{path}: frame {fid} has no {what} file")
        depths.append(read_depth(_frame_path(root, fid, "png", digits)))
        pose_path = _frame_path(root, fid, "txt", digits)
        pose = read_pose(pose_path)  # checks a finite pose is rigid
        if not np.isfinite(pose).all():
            raise Vega3DError(
                f"{pose_path}: pose of frame {fid} is not finite (lost tracking); the frame cannot be used"
            )
        poses.append(pose)
        if color:
            colors.append(read_color(_frame_path(root, fid, "jpg", digits)))
    for arrays, what, ext in ((depths, "depth", "png"), (colors, "colour", "jpg")):
        for fid, a in zip(ids, arrays):
            if a.shape != arrays[0].shape:
                raise Vega3DError(
                    f"{_frame_path(root, fid, ext, digits)}: {what} is {a.shape[1]}x{a.shape[0]}, but frame {ids[0]} "
                    f"is {arrays[0].shape[1]}x{arrays[0].shape[0]}; expected one size"
                )
    return depths, poses, colors


def _intrinsics(root: Path, depth_size, color_size, depth_intrinsics) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The depth intrinsics (given, else ``depth_intrinsic.txt``) and, with a ``color_size``, the
    colour intrinsics (``intrinsic.txt``), 3 x 3 each."""
    if depth_intrinsics is not None:
        k_depth = torch.as_tensor(np.asarray(depth_intrinsics, dtype=np.float64))
    else:
        k_file = root / "depth_intrinsic.txt"
        if not k_file.is_file():
            raise Vega3DError(f"{k_file}: missing depth intrinsics (4x4 matrix)")
        k_depth = read_intrinsics(k_file, depth_size, "depth intrinsics")
    if color_size is None:
        return k_depth, None
    k_file = root / "intrinsic.txt"
    if not k_file.is_file():
        raise Vega3DError(f"{k_file}: missing colour intrinsics (4x4 matrix)")
    return k_depth, read_intrinsics(k_file, color_size, "colour intrinsics")


@dataclass(frozen=True)
class Video3DInputs:
    """What the model needs from one scan: ``frame_ids``, ``color`` (F, H, W, 3) uint8 at native
    size, ``world`` (F, size, size, 3) float32 aligned world coordinates, ``proposals`` (K, 6)
    float32 boxes (or None)."""

    video_id: str
    frame_ids: tuple[int, ...]
    color: torch.Tensor
    world: torch.Tensor
    proposals: torch.Tensor | None


class Video3DData:
    """The released ``data/`` folder (module docstring), read lazily and checked.

    ``root``: the ``data`` folder. Optional files are found at their released places when they
    exist: the EmbodiedScan infos (axis alignment, depth intrinsics, frame lists; without them
    the scan folders' own files are used), the box files (``boxes`` maps a split name to a file;
    default ``{"train": scannet_train_gt_box.json, "val": scannet_val_pred_box.json}``) and the
    frame-selection file (needed only for ``mc*`` sampling).
    """

    def __init__(self, root, *, boxes: dict | None = None, select_frames=None, infos: Sequence | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise Vega3DError(f"{self.root}: data folder does not exist")
        self.posed_images = self.root / "scannet" / "posed_images"
        meta = self.root / "metadata"
        if boxes is None:
            boxes = {
                split: meta / f"scannet_{split}_{kind}_box.json"
                for split, kind in (("train", "gt"), ("val", "pred"))
                if (meta / f"scannet_{split}_{kind}_box.json").is_file()
            }
        self.box_files = {k: Path(v) for k, v in boxes.items()}
        self.select_file = Path(select_frames) if select_frames else meta / "scannet_select_frames.json"
        if infos is None:
            infos = sorted((self.root / "embodiedscan").glob("embodiedscan_infos_*.pkl"))
        self._info_files = [Path(p) for p in infos]
        self._infos: dict[str, ScanInfo] | None = None
        self._boxes: dict[str, dict[str, np.ndarray]] = {}
        self._select = None

    # -------------------------------------------------------------- lazily read files
    @property
    def infos(self) -> dict[str, ScanInfo]:
        if self._infos is None:
            self._infos = {}
            for f in self._info_files:
                self._infos.update(read_embodiedscan_infos(f))
        return self._infos

    def boxes(self, split: str) -> dict[str, np.ndarray]:
        """The box file of ``split`` (``{video_id: (K, 6)}``)."""
        if split not in self.box_files:
            raise Vega3DError(f"{self.root}: no box file for split {split!r} (have {sorted(self.box_files)})")
        if split not in self._boxes:
            self._boxes[split] = read_boxes(self.box_files[split])
        return self._boxes[split]

    def proposals(self, video_id: str, split: str) -> torch.Tensor:
        """(K, 6) float32 boxes of a scan from the ``split`` box file (error if the scan is missing)."""
        boxes = self.boxes(split)
        if video_id not in boxes:
            raise Vega3DError(f"{self.box_files[split]}: scene {video_id!r} is missing from the proposals file")
        return torch.as_tensor(boxes[video_id], dtype=torch.float32)

    def scene_dir(self, video_id: str) -> Path:
        path = self.posed_images / video_id.rsplit("/", 1)[-1]
        if not path.is_dir():
            raise Vega3DError(f"{path}: scan folder of {video_id!r} does not exist")
        return path

    def frame_ids(self, video_id: str) -> list[int]:
        """The scan's frame list: the EmbodiedScan ``images`` list when the infos know the scan, else
        the folder's ``<digits>.jpg`` files."""
        info = self.infos.get(video_id)
        return list(info.frame_ids) if info is not None else list_posed_frames(self.scene_dir(video_id))

    # -------------------------------------------------------------- frames
    def choose_frames(self, video_id: str, num_frames: int = MC_MAX_FRAMES, sampling: str = "uniform") -> list[int]:
        """Frame ids to load: ``uniform`` (``num_frames`` by the linspace-floor rule; more than the
        scan has is an error) or ``mc`` / ``mc-ratio90`` / ``mc-ratio95`` (the selection file, cut at
        the ratio, capped at ``num_frames``, sorted)."""
        if sampling not in SAMPLINGS:
            raise Vega3DError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        ids = self.frame_ids(video_id)
        if sampling == "uniform":
            return [ids[i] for i in uniform_frames(len(ids), num_frames, what=f"scan {video_id!r}")]
        if self._select is None:
            self._select = read_select_frames(self.select_file)
        if video_id not in self._select:
            raise Vega3DError(f"{self.select_file}: scene {video_id!r} is missing from the frame-selection file")
        chosen = frames_for_ratio(self._select[video_id], MC_RATIOS[sampling], num_frames)
        missing = sorted(set(chosen) - set(ids))
        if missing:
            raise Vega3DError(
                f"{self.select_file}: frames {missing[:10]} of {video_id!r} are not in the scan's frame list ({len(ids)} frames)"
            )
        return chosen

    def load(
        self,
        video_id: str,
        frame_ids: Sequence[int],
        *,
        size: int = IMAGE_SIZE,
        strategy: str = "resize",
        split: str | None = None,
    ) -> Video3DInputs:
        """Colour frames, world-coordinate maps and (with ``split``) the proposals of one scan."""
        info = self.infos.get(video_id)
        frames = read_posed_frames(
            self.scene_dir(video_id),
            frame_ids,
            axis_align=None if info is None else info.axis_align,
            depth_intrinsics=None if info is None else info.depth_intrinsics,
        )
        return Video3DInputs(
            video_id=video_id,
            frame_ids=frames.frame_ids,
            color=frames.color,
            world=frames.world(size, strategy),
            proposals=None if split is None else self.proposals(video_id, split),
        )


def _finite_pose_frames(root: Path, frame_ids: list[int], digits: dict) -> list[int]:
    """The frames of ``frame_ids`` whose pose is finite (the others logged); each needs a pose file."""
    finite = []
    for fid in frame_ids:
        pose_path = _frame_path(root, fid, "txt", digits)
        if not pose_path.is_file():
            raise Vega3DError(f"{pose_path}: frame {fid} has no pose file")
        if np.isfinite(read_pose(pose_path)).all():
            finite.append(fid)
        else:
            logger.warning("%s: frame %d has a non-finite pose; not a candidate", root, fid)
    return finite


def max_coverage_record(
    scene_dir,
    *,
    video_id: str | None = None,
    frame_ids: Sequence[int] | None = None,
    axis_align=None,
    depth_intrinsics=None,
    scene_voxels=None,
    max_frames: int = MC_MAX_FRAMES,
    stride: int = MC_CANDIDATE_STRIDE,
    voxel_size: float = MC_VOXEL_SIZE,
    seed: int = 0,
    prefix: str = "data/scannet/posed_images",
    chunk: int = 16,
) -> SelectFrames:
    """Maximum-coverage frame selection of one scan (``max_coverage_sampling.py``, docs/video3d.md).

    ``frame_ids``: the scan's frame list (default: the folder's frames); candidates are every
    ``stride``-th (all when fewer than ``max_frames`` remain). Each candidate's depth is unprojected
    at full resolution into the aligned world (``axis_align``, else the folder's file — required),
    voxelised at ``voxel_size`` and intersected with ``scene_voxels`` ((M, 3) integer voxel indices
    of the scan's points, ``pcd_discrete_0.1.pkl``; None: every voxel counts). Candidates with a
    non-finite pose are skipped (logged). ``frame_files`` are written as
    ``<prefix>/<scene>/<name>.jpg`` (the release: ``data/scannet/posed_images/...``).
    """
    root = Path(scene_dir)
    scene = root.name
    video_id = video_id or f"scannet/{scene}"
    ids = list(frame_ids) if frame_ids is not None else list_posed_frames(root)
    candidates = [ids[i] for i in candidate_positions(len(ids), stride, max_frames)]
    digits = {int(m.group(1)): m.group(1) for p in root.iterdir() if (m := _FRAME.match(p.name))}
    if axis_align is None:
        axis_align = read_axis_align(root)
        if axis_align is None:
            raise Vega3DError(
                f"{root}: no axis alignment (axis_align_matrix.txt or {scene}.txt; or pass the EmbodiedScan infos)"
            )
    usable, voxels = [], []
    for s in range(0, len(candidates), chunk):
        finite = _finite_pose_frames(root, candidates[s : s + chunk], digits)
        if not finite:
            continue
        frames = read_posed_frames(root, finite, color=False, axis_align=axis_align, depth_intrinsics=depth_intrinsics)
        world = unproject_depth(frames.depth, frames.intrinsics_depth, frames.poses, frames.axis_align)
        usable += finite
        voxels += [voxel_keys(w, voxel_size) for w in world]
    if not usable:
        raise Vega3DError(f"{root}: no candidate frame with a finite pose")
    scene_keys = None if scene_voxels is None else encode_voxels(scene_voxels)
    cover = max_coverage(voxels, scene_keys, max_frames=max_frames, seed=seed)
    files = [f"{prefix.rstrip('/')}/{scene}/{digits.get(usable[i], f'{usable[i]:05d}')}.jpg" for i in cover.order]
    return SelectFrames(video_id, tuple(files), tuple(cover.voxel_nums), cover.num_all_voxels, cover.num_select_voxels)
