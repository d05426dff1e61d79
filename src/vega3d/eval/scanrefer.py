"""ScanRefer (Chen et al., ECCV 2020) 3D visual grounding: Acc@0.25 / Acc@0.5.

A query is correct at threshold k when the IoU of the predicted box with the
ground-truth box is >= k (:func:`~vega3d.eval.boxes.box3d_iou`, with the
official ``+1e-8``). Accuracy is reported overall and on the ``unique`` /
``multiple`` splits (is the target the only object of its class in the scene),
as Video-3D LLM ``llava/eval/eval_scanrefer.py`` and the ScanRefer benchmark do.

Annotations: Video-3D LLM's ``scanrefer_val_llava_style.json`` — a list of
``{"id", "video", "box": [cx, cy, cz, dx, dy, dz], "metadata": {"question_type":
"unique" | "multiple", "object_id", "ann_id"}}`` (the raw ScanRefer JSON has no
boxes). Predictions: ``{"id": <id>, "box": [cx, cy, cz, dx, dy, dz]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vega3d.eval.boxes import checked_iou
from vega3d.eval.records import build_items, check_record, finite_mean, load_json_records, scoring_inputs

BENCHMARK = "scanrefer"
SPLITS = ("unique", "multiple")
THRESHOLDS = (0.25, 0.5)


@dataclass(frozen=True)
class Query:
    """One grounding query: ``id`` (string), ground-truth ``box`` (6 floats), ``split``."""

    id: str
    box: tuple[float, ...]
    split: str


def load_annotations(path: str | Path) -> list[Query]:
    """Read Video-3D LLM's llava-style ScanRefer file."""
    return build_items(load_json_records(path), path, _query, "ScanRefer")


def _query(record, where: str) -> Query:
    fields = check_record(record, {"id": "id", "box": "box", "metadata.question_type": SPLITS}, where)
    return Query(id=fields["id"], box=tuple(fields["box"]), split=fields["metadata.question_type"])


def evaluate(predictions, annotations) -> dict:
    """Score predicted boxes; returns ``{"acc@0.25", "acc@0.5", "splits": {split: {...}},
    "ious": {id: iou}, "counts"}`` with accuracies as fractions."""
    queries, preds = scoring_inputs(predictions, annotations, BENCHMARK, load_annotations, Query)
    ious = {q.id: checked_iou(preds[q.id]["box"], q.box) for q in queries}

    def accuracies(selected: list[Query]) -> dict[str, float]:
        return {f"acc@{k}": finite_mean([float(ious[q.id] >= k) for q in selected]) for k in THRESHOLDS}

    result = {"benchmark": BENCHMARK, **accuracies(queries)}
    result["splits"] = {s: accuracies([q for q in queries if q.split == s]) for s in SPLITS}
    result["ious"] = ious
    result["counts"] = {
        "expected": len(queries),
        "scored": len(ious),
        "per_split": {s: sum(q.split == s for q in queries) for s in SPLITS},
    }
    return result


def table_rows(result: dict) -> tuple[list[str], list[tuple[str, list]]]:
    """Columns Acc@0.25, Acc@0.5; rows overall, unique, multiple."""
    columns = ["Acc@0.25", "Acc@0.5"]
    rows = [("overall", [result["acc@0.25"], result["acc@0.5"]])]
    rows += [(s, [result["splits"][s]["acc@0.25"], result["splits"][s]["acc@0.5"]]) for s in SPLITS]
    return columns, rows
