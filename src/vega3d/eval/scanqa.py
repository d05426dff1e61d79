"""ScanQA (Azuma et al., CVPR 2022) question answering on ScanNet.

Scoring follows Video-3D LLM ``llava/eval/eval_scanqa.py`` — the script behind
the Video-3D LLM / VEGA-3D ScanQA numbers:

* caption metrics (CIDEr, BLEU-1..4, METEOR, ROUGE-L): pycocoevalcap on the
  prediction with trailing ``.`` removed against the raw reference answers, no
  tokenizer (``ptb_tokenize=True`` runs the COCO PTB tokenizer on both first);
* ``em`` — the official "raw" EM: the prediction (outer whitespace stripped, as
  the official runner strips the decoded text) is exactly one of the answers;
* ``em_normalized`` — EM after LEO's :func:`~vega3d.eval.answers.clean_answer` on
  prediction and answers (case, punctuation, articles, number words);
* ``em_refined`` — EM-R (LEO) on the cleaned strings.

Annotations: Video-3D LLM's ``scanqa_val_llava_style.json`` (answers in
``metadata.answers``; id = its ``id``, e.g. ``"scanqa_val-scene0011-0_0"``) or the
official ``ScanQA_v1.0_val.json`` (id = ``question_id``, e.g. ``"val-scene0011-0"``).
Predictions: ``{"id": <id>, "prediction": "<answer text>"}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vega3d.eval.answers import clean_answer, exact_match_refined
from vega3d.eval.captions import CaptionScorer, score_captions
from vega3d.eval.records import build_items, check_record, load_json_records, scoring_inputs

BENCHMARK = "scanqa"

COLUMNS = (
    ("cider", "CIDEr"),
    ("em", "EM"),
    ("bleu1", "BLEU-1"),
    ("bleu2", "BLEU-2"),
    ("bleu3", "BLEU-3"),
    ("bleu4", "BLEU-4"),
    ("meteor", "METEOR"),
    ("rouge_l", "ROUGE-L"),
    ("em_normalized", "EM-norm"),
    ("em_refined", "EM-R"),
)


@dataclass(frozen=True)
class Question:
    """One ScanQA question: ``id`` (string), reference ``answers``, ``scene_id`` and the
    ``prompt`` Video-3D LLM gives the model (``"<question> Answer the question simply."``;
    its runner prepends an instruction about 3D spatial information)."""

    id: str
    answers: tuple[str, ...]
    scene_id: str = ""
    prompt: str = ""


def load_annotations(path: str | Path) -> list[Question]:
    """Read Video-3D LLM's llava-style ScanQA file or the official ScanQA JSON."""
    return build_items(load_json_records(path), path, _question, "ScanQA")


# the fields of a Video-3D LLM llava-style record, and of an official ScanQA_v1.0_<split>.json one
LLAVA = {"id": "id", "metadata.answers": "texts", "conversations.0.value": "text"}
OFFICIAL = {"question_id": "id", "answers": "texts", "question": "text"}


def _question(record, where: str) -> Question:
    if isinstance(record, dict) and "metadata" in record:
        f = check_record(record, LLAVA, where)
        prompt = f["conversations.0.value"].replace("<image>", "").strip()  # the question turn
        return Question(f["id"], tuple(f["metadata.answers"]), str(record.get("video", "")).split("/")[-1], prompt)
    f = check_record(record, OFFICIAL, where)
    prompt = f"{f['question']} Answer the question simply."
    return Question(f["question_id"], tuple(f["answers"]), str(record.get("scene_id", "")), prompt)


def evaluate(predictions, annotations, *, scorer: CaptionScorer | None = None, ptb_tokenize: bool = False) -> dict:
    """Score predictions (JSONL path, ``{id: {"prediction": str}}`` or records) against
    annotations (path or :func:`load_annotations` output). Fractions in [0, 1]
    (CIDEr is unbounded). Pass a shared ``scorer`` to reuse its METEOR process.
    """
    questions, preds = scoring_inputs(predictions, annotations, BENCHMARK, load_annotations, Question)

    gts, res = {}, {}
    em = em_normalized = em_refined = 0
    for q in questions:
        pred = preds[q.id]["prediction"]
        gts[q.id] = list(q.answers)
        res[q.id] = [pred.rstrip(".")]
        em += pred.strip() in q.answers
        cleaned_pred = clean_answer(pred)
        cleaned_answers = [clean_answer(a) for a in q.answers]
        em_normalized += cleaned_pred in cleaned_answers
        em_refined += exact_match_refined(cleaned_pred, cleaned_answers)

    captions = score_captions(gts, res, scorer=scorer, ptb_tokenize=ptb_tokenize)
    n = len(questions)
    result = {"benchmark": BENCHMARK}
    result.update({k: v for k, v in captions.items() if k != "per_item"})
    result.update(em=em / n, em_normalized=em_normalized / n, em_refined=em_refined / n)
    result["counts"] = {"expected": n, "scored": n}
    result["protocol"] = {
        "ptb_tokenize": ptb_tokenize,
        "reference": "Video-3D LLM llava/eval/eval_scanqa.py; LEO clean_answer",
    }
    return result


def table_rows(result: dict) -> tuple[list[str], list[tuple[str, list]]]:
    """Column titles (paper's CIDEr, EM first) and one ``(label, values)`` row."""
    return [title for _key, title in COLUMNS], [("all", [result[key] for key, _title in COLUMNS])]
