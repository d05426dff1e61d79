"""VSI-Bench (Yang et al., "Thinking in Space", arXiv 2412.14171).

Scoring reproduces ``lmms_eval/tasks/vsibench/utils.py`` of the
vision-x-nyu/thinking-in-space repository (same code in upstream lmms-eval):

* answer parsing (``fuzzy_matching``): the first token of the raw model output
  when split on a single space, trailing ``.`` stripped, then outer whitespace
  stripped. So ``"3 chairs."`` -> ``"3"`` and ``" 3"`` -> ``""``.
* multiple choice (``MCA_QUESTION_TYPES``): 1 if the parsed token equals the
  ground-truth letter case-insensitively, else 0.
* numerical answers (``NA_QUESTION_TYPES``): Mean Relative Accuracy,
  :func:`mean_relative_accuracy`; a parsed token that ``float()`` rejects scores 0.
* aggregation: mean per question type; the three ``object_rel_direction_*``
  types are averaged into one "Rel. Dir." task; overall = unweighted mean of the
  task scores (8 on the full benchmark).

Annotations: the official ``test-00000-of-00001.parquet`` (HF ``nyu-visionx/VSI-Bench``)
or the same records as JSON / JSONL, with columns ``id``, ``dataset``,
``scene_name``, ``question_type``, ``question``, ``options`` (MCA only),
``ground_truth``. Predictions: ``{"id": <id>, "prediction": "<raw model output>"}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vega3d.errors import Vega3DError
from vega3d.eval.records import build_items, check_record, finite_mean, load_json_records, scoring_inputs

BENCHMARK = "vsibench"

MCA_QUESTION_TYPES = (
    "object_rel_direction_easy",
    "object_rel_direction_medium",
    "object_rel_direction_hard",
    "object_rel_distance",
    "route_planning",
    "obj_appearance_order",
)
NA_QUESTION_TYPES = (
    "object_abs_distance",
    "object_counting",
    "object_size_estimation",
    "room_size_estimation",
)
DIRECTION_TYPES = MCA_QUESTION_TYPES[:3]

# The 8 tasks in the paper's column order: (task key, column title).
TASKS = (
    ("object_counting", "Obj. Count"),
    ("object_abs_distance", "Abs. Dist."),
    ("object_size_estimation", "Obj. Size"),
    ("room_size_estimation", "Room Size"),
    ("object_rel_distance", "Rel. Dist."),
    ("object_rel_direction", "Rel. Dir."),
    ("route_planning", "Route Plan"),
    ("obj_appearance_order", "Appr. Order"),
)

# The official thresholds: np.linspace(.5, .95, int((.95 - .5) / .05 + 2)) -> 10 points.
MRA_THRESHOLDS = np.linspace(0.5, 0.95, int((0.95 - 0.5) / 0.05 + 2))


# Default prompt pieces of the official ``vsibench_doc_to_text``.
PRE_PROMPT = "These are frames of a video."
NA_POST_PROMPT = "Please answer the question using a single word or phrase."
MCA_POST_PROMPT = "Answer with the option's letter from the given choices directly."


@dataclass(frozen=True)
class Question:
    """One VSI-Bench question: ``id`` (as a string), ``question_type``, ``ground_truth``
    (letter for MCA, number as text for NA), ``scene_name``, ``dataset``, the
    ``question`` text and the MCA ``options`` (``"A. ..."`` strings)."""

    id: str
    question_type: str
    ground_truth: str
    scene_name: str = ""
    dataset: str = ""
    question: str = ""
    options: tuple[str, ...] = ()

    @property
    def prompt(self) -> str:
        """The text prompt the official lmms-eval task gives the model (``vsibench_doc_to_text``
        with its default pre/post prompts)."""
        if self.question_type in NA_QUESTION_TYPES:
            return f"{PRE_PROMPT}\n{self.question}\n{NA_POST_PROMPT}"
        options = "Options:\n" + "\n".join(self.options)
        return "\n".join([PRE_PROMPT, self.question, options, MCA_POST_PROMPT])

    def video_path(self, root: str | Path) -> Path:
        """The official video location: ``root/<dataset>/<scene_name>.mp4``."""
        return Path(root) / self.dataset / f"{self.scene_name}.mp4"


def parse_answer(text: str) -> str:
    """The official ``fuzzy_matching``: first space-separated token, trailing dots and
    outer whitespace stripped."""
    return text.split(" ")[0].rstrip(".").strip()


def _to_float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError, OverflowError):
        return None


def mean_relative_accuracy(pred: float, gt: float) -> float:
    """Mean Relative Accuracy in [0, 1]: the fraction of θ ∈ {0.50, 0.55, ..., 0.95}
    with ``|pred - gt| / gt <= 1 - θ``.

    Computed exactly as the official code does — thresholds from ``np.linspace``
    and ``1 - θ`` in float64 — so boundaries follow its rounding: a relative error
    of 0.05 passes every threshold (``1 - 0.95`` = 0.050000000000000044), so
    ``mean_relative_accuracy(1.05, 1.0) == 1.0``; ``1.35`` vs ``1.0`` (relative
    error 0.3500000000000001) fails θ = 0.65 and scores 0.3 while ``0.65`` vs
    ``1.0`` (exactly 0.35) passes it and scores 0.4.
    A non-finite ``pred`` scores 0. ``gt`` must be finite and > 0.
    """
    gt = float(gt)
    if not math.isfinite(gt) or gt <= 0:
        raise Vega3DError(f"mean_relative_accuracy: ground truth must be a finite number > 0, found {gt!r}")
    pred = float(pred)
    if not math.isfinite(pred):
        return 0.0
    relative_error = abs(pred - gt) / gt
    return float(np.mean(relative_error <= 1 - MRA_THRESHOLDS))


def score_question(question: Question, prediction: str) -> float:
    """Score one raw model output for ``question`` (0/1 for MCA, MRA for NA)."""
    answer = parse_answer(prediction)
    if question.question_type in MCA_QUESTION_TYPES:
        return 1.0 if answer.lower() == question.ground_truth.lower() else 0.0
    value = _to_float(answer)
    if value is None:
        return 0.0
    return mean_relative_accuracy(value, float(question.ground_truth))


def load_annotations(path: str | Path) -> list[Question]:
    """Read the official parquet, or JSON / JSONL records with the same columns."""
    path = Path(path)
    if path.suffix == ".parquet":
        if not path.is_file():
            raise Vega3DError(f"annotation file {path} does not exist")
        import pyarrow.parquet as pq

        records = pq.read_table(path).to_pylist()
    else:
        records = load_json_records(path)
    return build_items(records, path, _question, "VSI-Bench")


# the columns of a record (the official parquet's; "options" only for multiple choice)
FIELDS = {
    "id": "id",
    "question_type": MCA_QUESTION_TYPES + NA_QUESTION_TYPES,
    "ground_truth": "number_or_text",
    "options?": "strings",
}


def _question(record, where: str) -> Question:
    f = check_record(record, FIELDS, where)
    if f["question_type"] in NA_QUESTION_TYPES:  # a numerical answer: MRA divides by it
        check_record(record, {"ground_truth": "positive_number"}, f"{where} (id {f['id']!r})")
    return Question(
        id=f["id"],
        question_type=f["question_type"],
        ground_truth=f["ground_truth"],
        scene_name=str(record.get("scene_name", "")),
        dataset=str(record.get("dataset", "")),
        question=str(record.get("question", "")),
        options=tuple(f.get("options") or ()),
    )


def check_directions(question_types, prefix: str = "") -> None:
    """Questions of these types can be scored: relative direction (the mean of its easy, medium and
    hard sub-tasks) has all three sub-tasks or none (``prefix``: the start of the error)."""
    present = set(DIRECTION_TYPES) & set(question_types)
    if present and len(present) != len(DIRECTION_TYPES):
        missing = sorted(set(DIRECTION_TYPES) - present)
        raise Vega3DError(
            f"{prefix}vsibench: relative direction is the mean of its easy/medium/hard sub-tasks; "
            f"annotations lack {missing}"
        )


def evaluate(predictions, annotations) -> dict:
    """Score predictions (JSONL path, ``{id: {"prediction": str}}`` or records) against
    annotations (path or :func:`load_annotations` output).

    Returns fractions in [0, 1]: ``{"overall", "tasks": {task: score},
    "question_types": {type: score}, "counts": {...}}``.
    """
    questions, preds = scoring_inputs(predictions, annotations, BENCHMARK, load_annotations, Question)

    per_type: dict[str, list[float]] = {}
    for question in questions:
        score = score_question(question, preds[question.id]["prediction"])
        per_type.setdefault(question.question_type, []).append(score)
    type_scores = {qt: finite_mean(scores) for qt, scores in per_type.items()}

    check_directions(type_scores)
    present_directions = [qt for qt in DIRECTION_TYPES if qt in type_scores]
    tasks: dict[str, float] = {}
    for task, _title in TASKS:
        if task == "object_rel_direction":
            if present_directions:
                tasks[task] = sum(type_scores[qt] for qt in DIRECTION_TYPES) / 3.0
        elif task in type_scores:
            tasks[task] = type_scores[task]
    return {
        "benchmark": BENCHMARK,
        "overall": sum(tasks.values()) / len(tasks),
        "tasks": tasks,
        "question_types": {qt: type_scores[qt] for qt in MCA_QUESTION_TYPES + NA_QUESTION_TYPES if qt in type_scores},
        "counts": {
            "expected": len(questions),
            "scored": sum(len(v) for v in per_type.values()),
            "per_question_type": {qt: len(v) for qt, v in per_type.items()},
            "tasks_present": len(tasks),
            "tasks_total": len(TASKS),
        },
    }


def table_rows(result: dict) -> tuple[list[str], list[tuple[str, list[float | None]]]]:
    """Column titles and ``(label, values)`` rows (fractions) in the paper's order."""
    columns = ["Avg."] + [title for _task, title in TASKS]
    row = [result["overall"]] + [result["tasks"].get(task) for task, _title in TASKS]
    return columns, [("all", row)]
