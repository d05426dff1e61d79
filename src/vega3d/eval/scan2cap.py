"""Scan2Cap (Chen et al., CVPR 2021) dense captioning: CIDEr / BLEU-4 / METEOR / ROUGE-L @0.5 IoU.

Every ground-truth object is scored. An object counts as *detected* when the
box its caption was generated for (the prediction's ``box``, else the
annotation's ``box_input`` — the best Mask3D proposal Video-3D LLM picked for it)
has IoU >= 0.5 with the ground-truth box (``>=`` as Video-3D LLM's
``process_scan2cap.py``; Scan2Cap's original code uses ``>``).

Two numbers per metric, both averaged over ALL ground-truth objects:

* the official protocol (``cider``, ``bleu4``, ...; the table's first row):
  Scan2Cap ``lib/eval_helper.py::eval_cap`` gives an undetected object the
  placeholder caption ``"sos eos"`` (Video-3D LLM: the empty caption), then
  scores all objects with the COCO scorers. Strings are prepared as Video-3D
  LLM ``llava/eval/eval_scan2cap.py`` does: ``'sos ' + text.replace('.', ' . ')
  .replace(',', ' , ').lower() + ' eos'`` for hypothesis and references.
  The placeholder scores exactly 0 CIDEr but not exactly 0 ROUGE-L / METEOR /
  BLEU (``sos``/``eos`` match), and BLEU is corpus-level.
* ``strict``: the paper's definition m@kIoU = (1/N) Σ m_i·u_i — per-object
  pycocoevalcap scores (sentence BLEU for BLEU-n) times u_i ∈ {0, 1}, so an
  undetected object contributes exactly 0 to every metric.

Annotations: Video-3D LLM's ``scan2cap_val_llava_style.json`` — a list of
``{"id", "gt_box": [6], "box_input": [6] | null, "annotations": [captions],
"conversations": [..., {"value": caption}], "metadata": {...}}`` (references are
``annotations``, else the answer turn). Predictions: ``{"id": <id>,
"prediction": "<caption>", "box": [6] (optional)}``; undetected objects still
need a record (any caption, e.g. ``""``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vega3d.eval.boxes import checked_iou
from vega3d.eval.captions import METRICS, CaptionScorer, score_captions
from vega3d.eval.records import build_items, check_record, load_json_records, scoring_inputs

BENCHMARK = "scan2cap"
IOU_THRESHOLD = 0.5
COLUMNS = (("cider", "CIDEr@0.5"), ("bleu4", "BLEU-4@0.5"), ("meteor", "METEOR@0.5"), ("rouge_l", "ROUGE-L@0.5"))


@dataclass(frozen=True)
class GroundTruthObject:
    """One object to caption: ``id``, ``gt_box``, ``box_input`` (proposal or None), ``references``."""

    id: str
    gt_box: tuple[float, ...]
    box_input: tuple[float, ...] | None
    references: tuple[str, ...]


def prepare_caption(text: str) -> str:
    """Video-3D LLM's string preparation for the COCO scorers."""
    return "sos " + text.replace(".", " . ").replace(",", " , ").lower() + " eos"


def load_annotations(path: str | Path) -> list[GroundTruthObject]:
    """Read Video-3D LLM's llava-style Scan2Cap file."""
    return build_items(load_json_records(path), path, _object, "Scan2Cap")


def _object(record, where: str) -> GroundTruthObject:
    captions = isinstance(record, dict) and "annotations" in record  # else the answer turn is the reference
    references = {"annotations": "texts"} if captions else {"conversations.1.value": "text"}
    fields = check_record(record, {"id": "id", "gt_box": "box", "box_input?": "box", **references}, where)
    box_input = fields.get("box_input")
    return GroundTruthObject(
        fields["id"],
        tuple(fields["gt_box"]),
        tuple(box_input) if box_input is not None else None,
        tuple(fields["annotations"] if captions else [fields["conversations.1.value"]]),
    )


def evaluate(predictions, annotations, *, scorer: CaptionScorer | None = None, ptb_tokenize: bool = False) -> dict:
    """Score captions @0.5 IoU (see module docstring). Pass a shared ``scorer`` to
    reuse its METEOR process; ``ptb_tokenize`` runs the PTB tokenizer on the
    prepared strings first."""
    objects, preds = scoring_inputs(predictions, annotations, BENCHMARK, load_annotations, GroundTruthObject)

    detected, ious, gts, res = {}, {}, {}, {}
    for obj in objects:
        pred = preds[obj.id]
        box = pred.get("box") if pred.get("box") is not None else obj.box_input
        ious[obj.id] = checked_iou(box, obj.gt_box) if box is not None else 0.0
        detected[obj.id] = box is not None and ious[obj.id] >= IOU_THRESHOLD
        gts[obj.id] = [prepare_caption(r) for r in obj.references]
        res[obj.id] = [prepare_caption(pred["prediction"] if detected[obj.id] else "")]

    scores = score_captions(gts, res, scorer=scorer, ptb_tokenize=ptb_tokenize)
    n = len(objects)
    mask = [1.0 if detected[o.id] else 0.0 for o in objects]
    result = {"benchmark": BENCHMARK, **{m: scores[m] for m in METRICS}}
    result["strict"] = {m: sum(s * u for s, u in zip(scores["per_item"][m], mask)) / n for m in METRICS}
    result["ious"] = ious
    result["counts"] = {"expected": n, "scored": n, "detected@0.5": int(sum(mask))}
    result["protocol"] = {
        "iou_threshold": IOU_THRESHOLD,
        "ptb_tokenize": ptb_tokenize,
        "reference": "Scan2Cap eval_cap placeholder rule; Video-3D LLM eval_scan2cap.py preparation",
    }
    return result


def table_rows(result: dict) -> tuple[list[str], list[tuple[str, list]]]:
    """Columns CIDEr/BLEU-4/METEOR/ROUGE-L @0.5; rows official protocol and strict m·u."""
    columns = [title for _key, title in COLUMNS]
    return columns, [
        ("official", [result[key] for key, _title in COLUMNS]),
        ("strict (m*u)", [result["strict"][key] for key, _title in COLUMNS]),
    ]
