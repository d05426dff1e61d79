"""Readers for Video-3D LLM's released data files, checked at load (fields: docs/video3d.md).

- ``processed/<task>_<split>_llava_style.json`` → :func:`read_samples` (:class:`Sample` per record,
  the five tasks ScanRefer, Multi3DRefer, Scan2Cap, ScanQA, SQA3D);
- ``metadata/scannet_{train_gt,val_pred}_box.json`` → :func:`read_boxes`;
- ``metadata/scannet_select_frames.json`` → :func:`read_select_frames`;
- ``metadata/pcd_discrete_0.1.pkl`` → :func:`read_scene_voxels`;
- ``embodiedscan/embodiedscan_infos_<split>.pkl`` → :func:`read_embodiedscan_infos` (axis
  alignment, depth intrinsics and frame list per scan).

Pickles are read with a restricted unpickler that builds only plain containers, numbers and
numpy arrays (no code runs). Bad input raises :class:`~vega3d.errors.Vega3DError`, one line
naming the file and the record: a malformed record, a zero-size box, a scene missing from the
proposals file, an annotation naming an object id the box file does not have (:func:`check_samples`).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vega3d.errors import Vega3DError
from vega3d.files import read_json
from vega3d.video3d.frames import SelectFrames, frame_id_of

TASKS = ("scanrefer", "multi3drefer", "scan2cap", "scanqa", "sqa3d")
#: ``metadata.dataset`` value of each task in the released files.
DATASET_NAMES = {"scanrefer": "scanrefer", "multi3drefer": "multi3drefer", "scan2cap": "scan2cap", "scanqa": "scanQA",
                 "sqa3d": "sqa3d"}  # fmt: skip
_TASK_OF = {v: k for k, v in DATASET_NAMES.items()}
GROUNDING_TASKS = ("scanrefer", "multi3drefer")
IMAGE_TOKEN = "<image>"
GROUND_TOKEN = "<ground>"
COORD_TOKEN = "<coord>"
#: ``add_spatial_instruction`` of the release's training (``train_3d.py``): the line before a question.
SPATIAL_INSTRUCTION = (
    "The video captures 3D spatial information of a scene. Please focus on the spatial relationships in the video "
    "and answer the following questions."
)
SCANREFER_TYPES = ("unique", "multiple")
MULTI3DREFER_TYPES = ("zt_wo_d", "zt_w_d", "st_wo_d", "st_w_d", "mt")
SQA3D_TYPES = ("what", "is", "how", "can", "which", "others")


# ---------------------------------------------------------------------------- llava-style records
@dataclass(frozen=True)
class Sample:
    """One record of a ``*_llava_style.json`` file, checked.

    ``question`` / ``answer``: the human and gpt turns as written (the question holds ``<image>``;
    grounding answers are ``<ground>``; Scan2Cap questions hold ``<coord>``). ``object_ids``: the
    target object ids (ScanRefer 1, Multi3DRefer 0 or more, Scan2Cap 1, QA none) — indices into the
    scene's list in the GT box file. ``boxes``: the targets' ground-truth boxes (Scan2Cap:
    ``gt_box``). ``box_input``: Scan2Cap's ``<coord>`` box (a proposal at val, the GT box in
    training; None = no proposal). ``answers``: every reference (ScanQA val ``metadata.answers``,
    Scan2Cap val ``annotations``), else the answer alone.
    """

    task: str
    id: int | str
    video: str
    question: str
    answer: str
    question_type: str
    object_ids: tuple[int, ...] = ()
    boxes: tuple[tuple[float, ...], ...] = ()
    box_input: tuple[float, ...] | None = None
    answers: tuple[str, ...] = ()
    metadata: dict = field(default_factory=dict, compare=False)
    source: str = field(default="", compare=False)
    index: int = field(default=-1, compare=False)

    @property
    def scene(self) -> str:
        """The scan name: the last part of ``video`` (``scannet/scene0000_00`` → ``scene0000_00``)."""
        return self.video.rsplit("/", 1)[-1]

    @property
    def where(self) -> str:
        return f"{self.source} record {self.index} (id {self.id!r})"


def check_box(value, where: str) -> tuple[float, ...]:
    """Six finite numbers [cx, cy, cz, dx, dy, dz] with every size > 0 (a zero-size box is an error)."""
    try:
        box = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        box = None
    if box is None or box.shape != (6,):
        raise Vega3DError(f"{where}: expected a box of 6 numbers [cx, cy, cz, dx, dy, dz], found {value!r}")
    if not np.isfinite(box).all():
        raise Vega3DError(f"{where}: box has a non-finite value: {value!r}")
    if (box[3:] <= 0).any():
        raise Vega3DError(f"{where}: zero-size box (sizes dx, dy, dz must be > 0), found sizes {box[3:].tolist()}")
    return tuple(float(x) for x in box)


def _object_id(value, where: str) -> int:
    # ScanRefer / Scan2Cap write the id as a string ("10"), Multi3DRefer as ints; train_3d.py: int(id)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value.isdigit()):
        raise Vega3DError(f"{where}: object id must be a non-negative integer (or its digits), found {value!r}")
    return int(value)


def _get(record: Mapping, key: str, where: str, kind=None):
    if key not in record:
        raise Vega3DError(f"{where}: missing field {key!r} (fields: {sorted(record)})")
    value = record[key]
    if kind is not None and not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise Vega3DError(f"{where}: field {key!r} must be {names}, found {type(value).__name__} {value!r}")
    return value


def _strings(value, where: str, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise Vega3DError(f"{where}: {what} must be a non-empty list of strings, found {value!r}")
    return tuple(value)


def parse_sample(record, *, source: str = "", index: int = -1, task: str | None = None) -> Sample:
    """One llava-style record → :class:`Sample` (rules in the module docstring and docs/video3d.md)."""
    out, metadata, where = _common_fields(record, f"{source} record {index}", task)
    out.update(_TASK_FIELDS[out["task"]](record, metadata, out, where))
    out.setdefault("answers", (out["answer"],))
    return Sample(**out, metadata=dict(metadata), source=source, index=index)


def _common_fields(record, where: str, task: str | None) -> tuple[dict, Mapping, str]:
    """The fields of every task (task, id, video, question, answer, question_type), checked; the
    record's metadata; ``where`` with the id."""
    if not isinstance(record, Mapping):
        raise Vega3DError(f"{where}: expected a JSON object, found {type(record).__name__}")
    item_id = _get(record, "id", where, (int, str))
    if isinstance(item_id, bool):
        raise Vega3DError(f"{where}: 'id' must be an integer or a string, found {item_id!r}")
    where = f"{where} (id {item_id!r})"
    video = _get(record, "video", where, str)
    if not video.strip("/") or video.endswith("/"):
        raise Vega3DError(f"{where}: 'video' must name a scan like 'scannet/scene0000_00', found {video!r}")
    metadata = _get(record, "metadata", where, dict)
    dataset = _get(metadata, "dataset", f"{where} metadata", str)
    if dataset not in _TASK_OF:
        raise Vega3DError(f"{where}: metadata.dataset must be one of {sorted(_TASK_OF)}, found {dataset!r}")
    kind = _TASK_OF[dataset]
    if task is not None and kind != task:
        raise Vega3DError(f"{where}: a {DATASET_NAMES[task]!r} file, but metadata.dataset is {dataset!r}")
    question, answer = _turns(_get(record, "conversations", where, list), where)
    qtype = _get(metadata, "question_type", f"{where} metadata", str)
    if kind in GROUNDING_TASKS and GROUND_TOKEN not in answer:
        raise Vega3DError(f"{where}: a grounding answer must be '<ground>', found {answer!r}")
    out = {"task": kind, "id": item_id, "video": video, "question": question, "answer": answer, "question_type": qtype}
    return out, metadata, where


def _turns(turns: list, where: str) -> tuple[str, str]:
    """The human turn (holding ``<image>`` once) and the gpt turn."""
    if len(turns) < 2 or not all(isinstance(t, Mapping) for t in turns[:2]):
        raise Vega3DError(f"{where}: 'conversations' must hold the human and the gpt turn, found {turns!r}")
    for n, role in enumerate(("human", "gpt")):
        if turns[n].get("from") != role or not isinstance(turns[n].get("value"), str):
            raise Vega3DError(
                f"{where}: conversations[{n}] must be {{'from': {role!r}, 'value': <text>}}, found {turns[n]!r}"
            )
    question, answer = turns[0]["value"], turns[1]["value"]
    if question.count(IMAGE_TOKEN) != 1:
        raise Vega3DError(f"{where}: the human turn must hold '<image>' once, found {question!r}")
    return question, answer


def _question_type(qtype: str, allowed: tuple, where: str) -> None:
    if qtype not in allowed:
        raise Vega3DError(f"{where}: metadata.question_type must be one of {allowed}, found {qtype!r}")


def _scanrefer_fields(record, metadata, out: dict, where: str) -> dict:
    _question_type(out["question_type"], SCANREFER_TYPES, where)
    return {
        "boxes": (check_box(_get(record, "box", where), f"{where} field 'box'"),),
        "object_ids": (_object_id(_get(metadata, "object_id", f"{where} metadata"), f"{where} metadata.object_id"),),
    }


def _multi3drefer_fields(record, metadata, out: dict, where: str) -> dict:
    qtype = out["question_type"]
    _question_type(qtype, MULTI3DREFER_TYPES, where)
    boxes = _get(record, "box", where, list)
    ids = _get(metadata, "object_id", f"{where} metadata", list)
    if len(ids) != len(boxes):
        raise Vega3DError(f"{where}: {len(boxes)} boxes but {len(ids)} object ids; expected one box per id")
    fields = {
        "boxes": tuple(check_box(b, f"{where} box[{j}]") for j, b in enumerate(boxes)),
        "object_ids": tuple(_object_id(o, f"{where} metadata.object_id[{j}]") for j, o in enumerate(ids)),
    }
    if qtype.startswith("zt") != (not ids):
        raise Vega3DError(f"{where}: question_type {qtype!r} does not fit {len(ids)} target object(s)")
    return fields


def _scan2cap_fields(record, metadata, out: dict, where: str) -> dict:
    if COORD_TOKEN not in out["question"]:
        raise Vega3DError(f"{where}: a Scan2Cap question must hold '<coord>', found {out['question']!r}")
    box_input = record.get("box_input")
    fields = {
        "boxes": (check_box(_get(record, "gt_box", where), f"{where} field 'gt_box'"),),
        "box_input": None if box_input is None else check_box(box_input, f"{where} field 'box_input'"),
        "object_ids": (_object_id(_get(metadata, "object_id", f"{where} metadata"), f"{where} metadata.object_id"),),
    }
    if "annotations" in record:
        fields["answers"] = _strings(record["annotations"], where, "'annotations'")
    return fields


def _scanqa_fields(record, metadata, out: dict, where: str) -> dict:
    return {"answers": _strings(metadata["answers"], where, "metadata.answers")} if "answers" in metadata else {}


def _sqa3d_fields(record, metadata, out: dict, where: str) -> dict:
    _question_type(out["question_type"], SQA3D_TYPES, where)
    return {}


#: Each task's own fields of a record, checked (``(record, metadata, common fields, where) -> fields``).
_TASK_FIELDS = {"scanrefer": _scanrefer_fields, "multi3drefer": _multi3drefer_fields, "scan2cap": _scan2cap_fields,
                "scanqa": _scanqa_fields, "sqa3d": _sqa3d_fields}  # fmt: skip


def read_samples(path, task: str | None = None) -> list[Sample]:
    """All records of a ``*_llava_style.json`` file (a JSON list), checked; ``task`` (one of
    :data:`TASKS`) additionally requires every record to be of that task."""
    if task is not None and task not in TASKS:
        raise Vega3DError(f"unknown task {task!r}; expected one of {TASKS}")
    data = read_json(path, "llava-style annotations")
    if not isinstance(data, list):
        raise Vega3DError(f"{path}: expected a JSON list of records, found {type(data).__name__}")
    return [parse_sample(r, source=str(path), index=i, task=task) for i, r in enumerate(data)]


# ---------------------------------------------------------------------------- boxes
def read_boxes(path) -> dict[str, np.ndarray]:
    """``scannet_{train_gt,val_pred}_box.json``: ``{"scannet/<scene>": [[cx, cy, cz, dx, dy, dz], ...]}``
    → ``{video_id: (K, 6) float64}``; list position = object id (GT) or proposal index (pred)."""
    data = read_json(path, "box file")
    if not isinstance(data, dict):
        raise Vega3DError(f"{path}: expected a JSON object {{video_id: [boxes]}}, found {type(data).__name__}")
    out = {}
    for video, boxes in data.items():
        where = f"{path} scene {video!r}"
        if not isinstance(boxes, list) or not boxes:
            raise Vega3DError(f"{where}: expected a non-empty list of boxes, found {boxes!r}"[:300])
        out[video] = np.array([check_box(b, f"{where} box {j}") for j, b in enumerate(boxes)], dtype=np.float64)
    return out


def check_samples(
    samples: Iterable[Sample],
    *,
    proposals: Mapping[str, np.ndarray] | None = None,
    proposals_file: str = "the proposals file",
    gt_boxes: Mapping[str, np.ndarray] | None = None,
    gt_file: str = "the GT box file",
) -> None:
    """Cross-file checks before any work: every sample's scene has proposals (when given), and
    every object id an annotation names exists in the GT box file (when given)."""
    for s in samples:
        if proposals is not None and s.video not in proposals:
            raise Vega3DError(f"{s.where}: scene {s.video!r} is missing from {proposals_file}")
        if gt_boxes is not None and s.object_ids:
            if s.video not in gt_boxes:
                raise Vega3DError(f"{s.where}: scene {s.video!r} is missing from {gt_file}")
            have = len(gt_boxes[s.video])
            bad = [o for o in s.object_ids if o >= have]
            if bad:
                raise Vega3DError(
                    f"{s.where}: names object id(s) {bad} but {gt_file} has {have} boxes for {s.video!r} (ids 0..{have - 1})"
                )


# ---------------------------------------------------------------------------- frame selection
def read_select_frames(path) -> dict[str, SelectFrames]:
    """``scannet_select_frames.json`` → ``{video_id: SelectFrames}``, checked (lengths, counts,
    frame names ``.../<scene>/<digits>.jpg`` of the record's own scene, no repeats)."""
    data = read_json(path, "frame-selection file")
    if not isinstance(data, list):
        raise Vega3DError(f"{path}: expected a JSON list of records, found {type(data).__name__}")
    out: dict[str, SelectFrames] = {}
    for i, rec in enumerate(data):
        where = f"{path} record {i}"
        if not isinstance(rec, Mapping):
            raise Vega3DError(f"{where}: expected a JSON object, found {type(rec).__name__}")
        video = _get(rec, "video_id", where, str)
        where = f"{where} ({video})"
        files = _get(rec, "frame_files", where, list)
        nums = _get(rec, "voxel_nums", where, list)
        n_all = _get(rec, "num_all_voxels", where, int)
        n_sel = _get(rec, "num_select_voxels", where, int)
        if not files or len(files) != len(nums):
            raise Vega3DError(
                f"{where}: {len(files)} frame_files but {len(nums)} voxel_nums; expected one per frame (>= 1)"
            )
        if not all(isinstance(f, str) for f in files):
            raise Vega3DError(f"{where}: frame_files must be strings")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in nums):
            raise Vega3DError(f"{where}: voxel_nums must be non-negative integers, found {nums[:8]}...")
        if not 0 <= n_sel <= n_all or sum(nums) != n_sel:
            raise Vega3DError(
                f"{where}: expected sum(voxel_nums) = num_select_voxels <= num_all_voxels, found "
                f"{sum(nums)}, {n_sel}, {n_all}"
            )
        scene = video.rsplit("/", 1)[-1]
        ids = []
        for f in files:
            parts = f.replace("\\", "/").split("/")
            if len(parts) < 2 or parts[-2] != scene:
                raise Vega3DError(f"{where}: frame file {f!r} is not in the scene's folder .../{scene}/")
            if not parts[-1].split(".")[0].isdigit():
                raise Vega3DError(f"{where}: frame file {f!r}: expected a name <digits>.jpg")
            ids.append(frame_id_of(f))
        if len(set(ids)) != len(ids):
            raise Vega3DError(f"{where}: a frame is listed twice: {ids}")
        if video in out:
            raise Vega3DError(f"{where}: scene {video!r} has two records")
        out[video] = SelectFrames(video, tuple(files), tuple(nums), n_all, n_sel)
    return out


def write_select_frames(path, records: Iterable[SelectFrames]) -> Path:
    """Write records as the released list format (atomically)."""
    from vega3d.files import write_json

    return write_json(path, [r.to_json() for r in records], indent=None)


# ---------------------------------------------------------------------------- pickles
class _SafeUnpickler(pickle.Unpickler):
    """Builds plain containers, numbers, strings and numpy arrays only."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only containers, numbers and numpy arrays)")


def read_pickle(path, what: str):
    """A pickle of plain data (module docstring); :class:`Vega3DError` naming the file otherwise."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return _SafeUnpickler(fh).load()
    except FileNotFoundError:
        raise Vega3DError(f"{what}: {path} does not exist") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as err:
        raise Vega3DError(f"{what}: {path} is not a readable plain-data pickle ({err})") from None


def read_scene_voxels(path) -> dict[str, np.ndarray]:
    """``pcd_discrete_0.1.pkl``: ``{scene_id: [(i, j, k), ...]}`` (``round(xyz / 0.1)`` of the aligned
    scan points) → ``{scene_id: (M, 3) int64}``."""
    from vega3d.video3d.frames import encode_voxels

    data = read_pickle(path, "scene voxel file")
    if not isinstance(data, dict):
        raise Vega3DError(f"{path}: expected {{scene_id: [(i, j, k), ...]}}, found {type(data).__name__}")
    out = {}
    for scene, voxels in data.items():
        try:
            arr = np.asarray(voxels, dtype=np.int64).reshape(-1, 3)
        except (TypeError, ValueError):
            raise Vega3DError(f"{path} scene {scene!r}: expected a list of integer (i, j, k) triples") from None
        encode_voxels(arr)  # range check
        out[str(scene)] = arr
    return out


@dataclass(frozen=True)
class ScanInfo:
    """Per scan, from the EmbodiedScan infos: axis alignment (4, 4), depth intrinsics (3, 3) in the
    library convention (file cx, cy + 0.5), and the frame list (ids, in list order)."""

    video_id: str
    axis_align: np.ndarray
    depth_intrinsics: np.ndarray | None
    frame_ids: tuple[int, ...]


def read_embodiedscan_infos(path) -> dict[str, ScanInfo]:
    """``embodiedscan_infos_<split>.pkl`` (``{"data_list": [...]}``) → ``{"scannet/<scene>": ScanInfo}``
    for the items whose ``sample_idx`` starts with ``scannet/`` (as the release). Keys used:
    ``axis_align_matrix``, ``depth_cam2img``, ``images[*].img_path``."""
    data = read_pickle(path, "EmbodiedScan infos")
    if not isinstance(data, dict) or not isinstance(data.get("data_list"), list):
        raise Vega3DError(f"{path}: expected a dict with a 'data_list' list (EmbodiedScan infos)")
    out = {}
    for i, item in enumerate(data["data_list"]):
        where = f"{path} data_list[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("sample_idx"), str):
            raise Vega3DError(f"{where}: expected a dict with 'sample_idx'")
        video = item["sample_idx"]
        if not video.startswith("scannet/"):
            continue
        where = f"{where} ({video})"
        align = _matrix(_get(item, "axis_align_matrix", where), where, "axis_align_matrix", (4, 4))
        k = item.get("depth_cam2img")
        k = None if k is None else _matrix(k, where, "depth_cam2img", (4, 4), (3, 3))[:3, :3].copy()
        if k is not None:
            k[0, 2] += 0.5
            k[1, 2] += 0.5
        images = _get(item, "images", where, list)
        ids = []
        for j, im in enumerate(images):
            if not isinstance(im, dict) or not isinstance(im.get("img_path"), str):
                raise Vega3DError(f"{where} images[{j}]: expected a dict with 'img_path'")
            ids.append(frame_id_of(im["img_path"]))
        out[video] = ScanInfo(video, align, k, tuple(ids))
    return out


def _matrix(value, where: str, name: str, *shapes) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        m = None
    if m is None or m.shape not in shapes or not np.isfinite(m).all():
        raise Vega3DError(
            f"{where}: {name} must be a finite {' or '.join(map(str, shapes))} matrix, found {value!r}"[:300]
        )
    return m
