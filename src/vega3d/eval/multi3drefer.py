"""Multi3DRefer (Zhang et al., ICCV 2023) grounding of zero, one or many objects: F1@0.25 / F1@0.5.

Per query, following M3DRef-CLIP ``m3drefclip/evaluation/multi3drefer_evaluator.py``
and Video-3D LLM ``llava/eval/eval_multi3drefer.py``:

* no predicted and no ground-truth box: F1 = 1; exactly one of them empty: F1 = 0;
* otherwise the IoU matrix (float32, padded square) is matched one-to-one with
  the Hungarian algorithm maximising total IoU (``scipy.optimize.linear_sum_assignment``);
  a matched pair is a true positive at threshold k when its IoU >= k, and
  F1 = 2·TP / (#pred + #gt). Extra predictions therefore lower F1.

The score is the mean F1 over queries, overall and per official sub-split
(``zt_wo_d``, ``zt_w_d`` zero target without/with distractors of the same
class; ``st_wo_d``, ``st_w_d`` single target; ``mt`` multiple targets), plus the
three groups zero / single / multiple.

Annotations: Video-3D LLM's ``multi3drefer_val_llava_style.json`` — a list of
``{"id", "box": [[cx, cy, cz, dx, dy, dz], ...] (possibly empty), "metadata":
{"question_type": <sub-split>}}``. Predictions: ``{"id": <id>, "boxes": [[...], ...]}``
(empty list = "no such object").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from vega3d.eval.boxes import checked_iou
from vega3d.eval.records import build_items, check_record, finite_mean, load_json_records, scoring_inputs

BENCHMARK = "multi3drefer"
SUB_SPLITS = ("zt_wo_d", "zt_w_d", "st_wo_d", "st_w_d", "mt")
GROUPS = {"zero": ("zt_wo_d", "zt_w_d"), "single": ("st_wo_d", "st_w_d"), "multiple": ("mt",)}
THRESHOLDS = (0.25, 0.5)


@dataclass(frozen=True)
class Query:
    """One query: ``id`` (string), ground-truth ``boxes`` (tuple of 6-float tuples), ``split``."""

    id: str
    boxes: tuple[tuple[float, ...], ...]
    split: str


def f1_scores(pred_boxes, gt_boxes, thresholds=THRESHOLDS) -> tuple[float, ...]:
    """F1 at each threshold for one query (rules in the module docstring; boxes checked with
    :func:`~vega3d.eval.boxes.as_box`, as :func:`evaluate` reads them)."""
    n_pred, n_gt = len(pred_boxes), len(gt_boxes)
    if n_pred == 0 and n_gt == 0:
        return tuple(1.0 for _ in thresholds)
    if n_pred == 0 or n_gt == 0:
        return tuple(0.0 for _ in thresholds)
    size = max(n_pred, n_gt)
    iou = np.zeros((size, size), dtype=np.float32)  # float32 like both official scorers
    for i, pred in enumerate(pred_boxes):
        for j, gt in enumerate(gt_boxes):
            iou[i, j] = checked_iou(pred, gt)
    rows, cols = linear_sum_assignment(-iou)
    matched = iou[rows[:n_pred], cols[:n_pred]]  # row i of the square problem is prediction i
    return tuple(2.0 * float(np.count_nonzero(matched >= k)) / (n_pred + n_gt) for k in thresholds)


def load_annotations(path: str | Path) -> list[Query]:
    """Read Video-3D LLM's llava-style Multi3DRefer file."""
    return build_items(load_json_records(path), path, _query, "Multi3DRefer")


def _query(record, where: str) -> Query:
    fields = check_record(record, {"id": "id", "box": "boxes", "metadata.question_type": SUB_SPLITS}, where)
    return Query(id=fields["id"], boxes=tuple(map(tuple, fields["box"])), split=fields["metadata.question_type"])


def evaluate(predictions, annotations) -> dict:
    """Mean F1@0.25 / F1@0.5 overall, per sub-split and per group (fractions;
    NaN where a split has no queries)."""
    queries, preds = scoring_inputs(predictions, annotations, BENCHMARK, load_annotations, Query)
    f1 = {q.id: f1_scores(preds[q.id]["boxes"], q.boxes) for q in queries}

    def means(selected: list[Query]) -> dict[str, float]:
        return {f"f1@{k}": finite_mean([f1[q.id][n] for q in selected]) for n, k in enumerate(THRESHOLDS)}

    result = {"benchmark": BENCHMARK, **means(queries)}
    result["sub_splits"] = {s: means([q for q in queries if q.split == s]) for s in SUB_SPLITS}
    result["groups"] = {g: means([q for q in queries if q.split in subs]) for g, subs in GROUPS.items()}
    result["counts"] = {
        "expected": len(queries),
        "scored": len(f1),
        "per_sub_split": {s: sum(q.split == s for q in queries) for s in SUB_SPLITS},
    }
    return result


def table_rows(result: dict) -> tuple[list[str], list[tuple[str, list]]]:
    """Columns F1@0.25, F1@0.5; rows overall, the three groups, the five sub-splits."""
    columns = ["F1@0.25", "F1@0.5"]
    rows = [("overall", [result["f1@0.25"], result["f1@0.5"]])]
    rows += [(g, [v["f1@0.25"], v["f1@0.5"]]) for g, v in result["groups"].items()]
    rows += [(s, [v["f1@0.25"], v["f1@0.5"]]) for s, v in result["sub_splits"].items()]
    return columns, rows
