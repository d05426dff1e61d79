"""Readers for Video-3D LLM's released data files, checked at load (fields: docs/video3d.md).

- ``processed/<task>_<split>_llava_style.json`` → :func:`read_samples` (:class:`Sample` per record,
  the five tasks ScanRefer, Multi3DRefer, Scan2Cap, ScanQA, SQA3D);
- ``metadata/scannet_{train_gt,val_pred}_box.json`` → :func:`read_boxes`;
- ``metadata/scannet_select_frames.json`` → :func:`read_select_frames`;
- ``metadata/pcd_discrete_0.1.pkl`` → :func:`read_scene_voxels`;
- ``embodiedscan/embodiedscan_infos_<split>.pkl`` → :func:`read_embodiedscan_infos` (axis
  alignment, depth intrinsics and frame list per scan).

Each record's shape is a pydantic model (strict types, finite numbers; keys the readers do not use
are ignored), checked by one :func:`vega3d.config.parse` per record; the rules between fields (a
task's tokens, one box per object id, ...) are each model's :meth:`problems`. Pickles are read with
a restricted unpickler that builds only plain containers, numbers and numpy arrays (no code runs).
Bad input raises :class:`~vega3d.errors.Vega3DError`, one line naming the file and the record: a
malformed record, a zero-size box, a scene missing from the proposals file, an annotation naming an
object id the box file does not have (:func:`check_samples`).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import BeforeValidator, Field, PlainValidator
from pydantic_core import PydanticCustomError

from vega3d.config import FileRecord, parse
from vega3d.errors import Vega3DError
from vega3d.files import read_json
from vega3d.video3d.frames import SelectFrames

TASKS = ("scanrefer", "multi3drefer", "scan2cap", "scanqa", "sqa3d")
#: ``metadata.dataset`` value of each task in the released files.
DATASET_NAMES = {"scanrefer": "scanrefer", "multi3drefer": "multi3drefer", "scan2cap": "scan2cap", "scanqa": "scanQA",
                 "sqa3d": "sqa3d"}  # fmt: skip
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
#: A frame file: ``<digits>.<ext>`` at the end of a path (``int`` of the digits is the frame id).
_FRAME_FILE = r"^(.*[/\\])?[0-9]+(\.[^/\\]*)?$"


# ---------------------------------------------------------------------------- record fields
class _Record(FileRecord):
    """A record of a released file (the keys the readers do not use are ignored: the files carry more)."""


def _box_problem(value) -> str | None:
    """What is wrong with a box [cx, cy, cz, dx, dy, dz] (six finite numbers, sizes > 0); None if nothing."""
    try:
        box = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        box = np.zeros(0)
    if box.shape != (6,):
        return "expected a box of 6 numbers [cx, cy, cz, dx, dy, dz]"
    if not np.isfinite(box).all():
        return "box has a non-finite value"
    return "zero-size box (sizes dx, dy, dz must be > 0)" if (box[3:] <= 0).any() else None


def _as_box(value):
    """A box as a tuple of floats (None stays None: an optional box)."""
    if value is not None and (problem := _box_problem(value)):
        raise PydanticCustomError("box", problem)
    return None if value is None else tuple(float(x) for x in value)


def _as_object_id(value) -> int:
    # ScanRefer / Scan2Cap write the id as a string ("10"), Multi3DRefer as ints; train_3d.py: int(id)
    digits = isinstance(value, str) and value.isdecimal()
    if not digits and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise PydanticCustomError("object_id", "object id must be a non-negative integer or its digits")
    return int(value)


#: One box [cx, cy, cz, dx, dy, dz]: six finite numbers, every size > 0 (a zero-size box is an error).
Box = Annotated[tuple[float, ...], BeforeValidator(_as_box)]
#: An index into the scene's list in the GT box file (ScanRefer / Scan2Cap write its digits: "10").
ObjectId = Annotated[int, BeforeValidator(_as_object_id)]


class _Turn(_Record):
    role: str = Field(alias="from")  # "human" (the question) or "gpt" (the answer)
    value: str  # the turn's text


class _Metadata(_Record):
    dataset: Literal["scanrefer", "multi3drefer", "scan2cap", "scanQA", "sqa3d"]  # the task (DATASET_NAMES)
    question_type: str  # free text for Scan2Cap and ScanQA; one of the task's types for the others


class _ScanReferMeta(_Metadata):
    question_type: Literal[SCANREFER_TYPES]
    object_id: ObjectId  # the target


class _Multi3DReferMeta(_Metadata):
    question_type: Literal[MULTI3DREFER_TYPES]  # zt_*: zero targets
    object_id: list[ObjectId]  # the targets (0 or more), one per box


class _Scan2CapMeta(_Metadata):
    object_id: ObjectId  # the described object


class _ScanQAMeta(_Metadata):
    answers: list[str] | None = Field(None, min_length=1)  # every reference answer (val)


class _SQA3DMeta(_Metadata):
    question_type: Literal[SQA3D_TYPES]


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


class _LlavaRecord(_Record):
    """The fields of every task's record; a subclass per task adds its own (:data:`_RECORDS`)."""

    TASK: ClassVar[str] = ""
    id: int | str  # the record's id (ScanQA: a string)
    video: str  # the scan: "scannet/scene0000_00"
    conversations: list[_Turn] = Field(min_length=2)  # the human turn (with <image>), then the gpt turn
    metadata: _Metadata

    @property
    def question(self) -> str:
        return self.conversations[0].value

    @property
    def answer(self) -> str:
        return self.conversations[1].value

    def problems(self, task: str | None) -> list[str]:
        """The rules between fields this record breaks (``task``: the one the file must hold, or None)."""
        roles = [t.role for t in self.conversations[:2]]
        rules = [
            (roles != ["human", "gpt"], f"conversations must start with the human, then the gpt turn; found {roles}"),
            (self.question.count(IMAGE_TOKEN) != 1, f"the human turn must hold '<image>' once, found {self.question!r}"),
            (not self.video.strip("/") or self.video.endswith("/"),
             f"'video' must name a scan like 'scannet/scene0000_00', found {self.video!r}"),
            (task not in (None, self.TASK),
             f"a {DATASET_NAMES.get(task)!r} file, but metadata.dataset is {self.metadata.dataset!r}"),
            *self.task_rules(),
        ]  # fmt: skip
        return [message for broken, message in rules if broken]

    def task_rules(self) -> list[tuple[bool, str]]:
        """The task's own rules: (broken, message) pairs."""
        return []

    def task_fields(self) -> dict:
        """The task's own :class:`Sample` fields."""
        return {}


class _GroundingRecord(_LlavaRecord):
    def task_rules(self) -> list[tuple[bool, str]]:
        return [(GROUND_TOKEN not in self.answer, f"a grounding answer must be '<ground>', found {self.answer!r}")]


class _ScanRefer(_GroundingRecord):
    TASK: ClassVar[str] = "scanrefer"
    box: Box  # the target's GT box
    metadata: _ScanReferMeta

    def task_fields(self) -> dict:
        return {"boxes": (self.box,), "object_ids": (self.metadata.object_id,)}


class _Multi3DRefer(_GroundingRecord):
    TASK: ClassVar[str] = "multi3drefer"
    box: list[Box]  # the targets' GT boxes, one per metadata.object_id
    metadata: _Multi3DReferMeta

    def task_rules(self) -> list[tuple[bool, str]]:
        qtype, n_ids = self.metadata.question_type, len(self.metadata.object_id)
        return super().task_rules() + [
            (n_ids != len(self.box), f"{len(self.box)} boxes but {n_ids} object ids; expected one box per id"),
            (qtype.startswith("zt") != (n_ids == 0), f"question_type {qtype!r} does not fit {n_ids} target object(s)"),
        ]

    def task_fields(self) -> dict:
        return {"boxes": tuple(self.box), "object_ids": tuple(self.metadata.object_id)}


class _Scan2Cap(_LlavaRecord):
    TASK: ClassVar[str] = "scan2cap"
    gt_box: Box  # the described object's GT box
    box_input: Box | None = None  # the <coord> box (None: no proposal overlaps the object)
    annotations: list[str] | None = Field(None, min_length=1)  # every reference caption (val)
    metadata: _Scan2CapMeta

    def task_rules(self) -> list[tuple[bool, str]]:
        return [(COORD_TOKEN not in self.question, f"a Scan2Cap question must hold '<coord>', found {self.question!r}")]

    def task_fields(self) -> dict:
        fields = {"boxes": (self.gt_box,), "box_input": self.box_input, "object_ids": (self.metadata.object_id,)}
        return fields | ({"answers": tuple(self.annotations)} if self.annotations else {})


class _ScanQA(_LlavaRecord):
    TASK: ClassVar[str] = "scanqa"
    metadata: _ScanQAMeta

    def task_fields(self) -> dict:
        return {"answers": tuple(self.metadata.answers)} if self.metadata.answers else {}


class _SQA3D(_LlavaRecord):
    TASK: ClassVar[str] = "sqa3d"
    metadata: _SQA3DMeta


#: The record model of each ``metadata.dataset`` value (an unknown one: the common model, which names it).
_RECORDS = {DATASET_NAMES[m.TASK]: m for m in (_ScanRefer, _Multi3DRefer, _Scan2Cap, _ScanQA, _SQA3D)}
_COMMON_FIELDS = ("id", "video", "conversations", "metadata")


def parse_sample(record, *, source: str = "", index: int = -1, task: str | None = None) -> Sample:
    """One llava-style record → :class:`Sample` (rules in the module docstring and docs/video3d.md)."""
    keys = record.keys() if isinstance(record, dict) else ()
    where = f"{source} record {index}" + (f" (id {record['id']!r})" if "id" in keys else "")
    missing = [k for k in _COMMON_FIELDS if k not in keys]
    if missing:
        found = f"fields {sorted(keys)}" if isinstance(record, dict) else type(record).__name__
        raise Vega3DError(
            f"{where}: missing field {missing[0]!r} (expected a JSON object with {_COMMON_FIELDS}, found {found})"
        )
    dataset = record["metadata"].get("dataset") if isinstance(record["metadata"], dict) else None
    rec = parse(_RECORDS.get(dataset, _LlavaRecord) if isinstance(dataset, str) else _LlavaRecord, record, where)
    problems = rec.problems(task)
    if problems:
        raise Vega3DError(f"{where}: {problems[0]}")
    sample = dict(task=rec.TASK, id=rec.id, video=rec.video, question=rec.question, answer=rec.answer)
    sample |= {"question_type": rec.metadata.question_type, "answers": (rec.answer,), **rec.task_fields()}
    return Sample(**sample, metadata=dict(record["metadata"]), source=source, index=index)


def _read(reader, path, what: str, kind: type, expected: str):
    """``reader(path, what)``'s content when it is a ``kind`` (``expected``: that in words)."""
    data = reader(path, what)
    if not isinstance(data, kind):
        raise Vega3DError(f"{path}: expected {expected}, found {type(data).__name__}")
    return data


def read_samples(path, task: str | None = None) -> list[Sample]:
    """All records of a ``*_llava_style.json`` file (a JSON list), checked; ``task`` (one of
    :data:`TASKS`) additionally requires every record to be of that task."""
    if task is not None and task not in TASKS:
        raise Vega3DError(f"unknown task {task!r}; expected one of {TASKS}")
    data = _read(read_json, path, "llava-style annotations", list, "a JSON list of records")
    return [parse_sample(r, source=str(path), index=i, task=task) for i, r in enumerate(data)]


# ---------------------------------------------------------------------------- boxes
def read_boxes(path) -> dict[str, np.ndarray]:
    """``scannet_{train_gt,val_pred}_box.json``: ``{"scannet/<scene>": [[cx, cy, cz, dx, dy, dz], ...]}``
    → ``{video_id: (K, 6) float64}``; list position = object id (GT) or proposal index (pred)."""
    data = _read(read_json, path, "box file", dict, "a JSON object {video_id: [boxes]}")
    out = {}
    for video, boxes in data.items():
        rows = boxes if isinstance(boxes, list) else []
        problems = [f"box {j}: {p}, found {b!r}" for j, b in enumerate(rows) if (p := _box_problem(b))]
        if problems or not rows:
            problem = problems[0] if problems else f"expected a non-empty list of boxes, found {boxes!r}"
            raise Vega3DError(f"{path} scene {video!r} {problem}"[:300])
        out[video] = np.array(rows, dtype=np.float64)
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
        have = len(gt_boxes.get(s.video, ())) if gt_boxes is not None else None
        bad = [o for o in s.object_ids if have is not None and o >= have]
        if bad:
            known = f"(ids 0..{have - 1})" if s.video in gt_boxes else "(the scene is missing from it)"
            raise Vega3DError(
                f"{s.where}: names object id(s) {bad} but {gt_file} has {have} boxes for {s.video!r} {known}"
            )


# ---------------------------------------------------------------------------- frame selection
class _SelectRecord(_Record):
    video_id: str  # "scannet/<scene>"
    frame_files: list[str] = Field(min_length=1)  # ".../<scene>/<digits>.jpg" in greedy order
    voxel_nums: list[Annotated[int, Field(ge=0)]]  # the new scene voxels each frame adds, one per frame
    num_all_voxels: int = Field(ge=0)  # scene voxels any candidate sees
    num_select_voxels: int = Field(ge=0)  # sum(voxel_nums)

    def problems(self) -> list[str]:
        """The rules between fields this record breaks."""
        files, nums, n_all, n_sel = self.frame_files, self.voxel_nums, self.num_all_voxels, self.num_select_voxels
        scene = self.video_id.rsplit("/", 1)[-1]
        parts = [f.replace("\\", "/").split("/") for f in files]
        stems = [p[-1].split(".")[0] for p in parts]
        ids = [int(s) for s in stems if s.isdecimal()]
        outside = [f for f, p in zip(files, parts) if len(p) < 2 or p[-2] != scene]
        rules = [
            (len(files) != len(nums), f"{len(files)} frame_files but {len(nums)} voxel_nums; expected one per frame"),
            (not n_sel <= n_all or sum(nums) != n_sel,
             f"expected sum(voxel_nums) = num_select_voxels <= num_all_voxels, found {sum(nums)}, {n_sel}, {n_all}"),
            (bool(outside), f"frame file {outside[:1]} is not in the scene's folder .../{scene}/"),
            (len(ids) != len(files), f"frame files {[f for f, s in zip(files, stems) if not s.isdecimal()][:3]}: "
             "expected names <digits>.jpg"),
            (len(set(ids)) != len(ids), f"a frame is listed twice: {ids}"),
        ]  # fmt: skip
        return [message for broken, message in rules if broken]


def read_select_frames(path) -> dict[str, SelectFrames]:
    """``scannet_select_frames.json`` → ``{video_id: SelectFrames}``, checked (lengths, counts,
    frame names ``.../<scene>/<digits>.jpg`` of the record's own scene, no repeats)."""
    data = _read(read_json, path, "frame-selection file", list, "a JSON list of records")
    out: dict[str, SelectFrames] = {}
    for i, raw in enumerate(data):
        rec = parse(_SelectRecord, raw, f"{path} record {i}")
        problems = rec.problems() + ([f"scene {rec.video_id!r} has two records"] if rec.video_id in out else [])
        if problems:
            raise Vega3DError(f"{path} record {i} ({rec.video_id}): {problems[0]}")
        out[rec.video_id] = SelectFrames(
            rec.video_id, tuple(rec.frame_files), tuple(rec.voxel_nums), rec.num_all_voxels, rec.num_select_voxels
        )
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
    except (FileNotFoundError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError) as err:  # fmt: skip
        problem = (
            "does not exist" if isinstance(err, FileNotFoundError) else f"is not a readable plain-data pickle ({err})"
        )
        raise Vega3DError(f"{what}: {path} {problem}") from None


def read_scene_voxels(path) -> dict[str, np.ndarray]:
    """``pcd_discrete_0.1.pkl``: ``{scene_id: [(i, j, k), ...]}`` (``round(xyz / 0.1)`` of the aligned
    scan points) → ``{scene_id: (M, 3) int64}``."""
    from vega3d.video3d.frames import encode_voxels

    data = _read(read_pickle, path, "scene voxel file", dict, "{scene_id: [(i, j, k), ...]}")
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


def _matrix(*shapes: tuple[int, int]):
    """A finite float64 matrix of one of ``shapes`` (given as an array or nested lists)."""

    def check(value) -> np.ndarray:
        try:
            m = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            m = np.zeros(0)
        if m.shape not in shapes or not np.isfinite(m).all():
            raise PydanticCustomError("matrix", f"expected a finite {' or '.join(map(str, shapes))} matrix")
        return m

    # errors show the value as nested lists (an array's repr spans lines)
    return Annotated[np.ndarray, PlainValidator(check), BeforeValidator(lambda v: getattr(v, "tolist", lambda: v)())]


class _InfoItem(_Record):
    sample_idx: str  # "scannet/<scene>" (items of other datasets are skipped)


class _Infos(_Record):
    data_list: list[_InfoItem]  # one item per scan


class _Image(_Record):
    img_path: str = Field(pattern=_FRAME_FILE)  # ".../<scene>/<digits>.jpg"


class _ScanItem(_Record):
    axis_align_matrix: _matrix((4, 4))  # the scan's axis alignment
    depth_cam2img: _matrix((4, 4), (3, 3)) | None = None  # depth intrinsics (file convention)
    images: list[_Image]  # the scan's frames, in list order


def read_embodiedscan_infos(path) -> dict[str, ScanInfo]:
    """``embodiedscan_infos_<split>.pkl`` (``{"data_list": [...]}``) → ``{"scannet/<scene>": ScanInfo}``
    for the items whose ``sample_idx`` starts with ``scannet/`` (as the release). Keys used:
    ``axis_align_matrix``, ``depth_cam2img``, ``images[*].img_path``."""
    from vega3d.video3d.frames import frame_id_of

    data = _read(read_pickle, path, "EmbodiedScan infos", dict, "a dict with a 'data_list' list (EmbodiedScan infos)")
    out = {}
    for i, item in enumerate(parse(_Infos, data, str(path)).data_list):
        video = item.sample_idx
        if not video.startswith("scannet/"):
            continue
        scan = parse(_ScanItem, data["data_list"][i], f"{path} data_list[{i}] ({video})")
        k = None if scan.depth_cam2img is None else scan.depth_cam2img[:3, :3].copy()
        if k is not None:
            k[0, 2] += 0.5
            k[1, 2] += 0.5
        out[video] = ScanInfo(video, scan.axis_align_matrix, k, tuple(frame_id_of(im.img_path) for im in scan.images))
    return out
