"""SQA3D (Ma et al., ICLR 2023) situated question answering.

Scoring follows Video-3D LLM ``llava/eval/eval_sqa3d.py`` (LEO's rule): EM is
``clean_answer(prediction) == clean_answer(answer)`` with LEO's
:func:`~vega3d.eval.answers.clean_answer`; EM-R is LEO's refined match on the
cleaned strings. Both are reported overall and per question type.

Question types (:func:`question_type`) follow the SQA3D / LEO rule
(``get_sqa_question_type``): the question text *without* the situation, left
stripped, is bucketed by its first characters, checked in this order —
``what``, ``is``, ``how``, ``can``, ``which`` — else ``others``.

Annotations: Video-3D LLM's ``sqa3d_test_llava_style.json`` (answer in
``conversations[1].value``, type in ``metadata.question_type``, id =
``question_id``) or the official balanced files: pass
``v1_balanced_sqa_annotations_<split>_scannetv2.json``; the questions file
``v1_balanced_questions_<split>_scannetv2.json`` next to it supplies the
question text for the type. Predictions: ``{"id": <question_id>, "prediction": "<answer>"}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vega3d.errors import Vega3DError
from vega3d.eval.answers import clean_answer, exact_match_refined
from vega3d.eval.records import (
    as_annotations,
    as_predictions,
    finite_mean,
    load_json_records,
    match_ids,
    prediction_id,
    require,
    unique_ids,
)

BENCHMARK = "sqa3d"
QUESTION_TYPES = ("what", "is", "how", "can", "which", "others")


@dataclass(frozen=True)
class Question:
    """One SQA3D question: ``id`` (string), the single ``answer``, its ``question_type``,
    ``scene_id`` and the ``prompt`` Video-3D LLM gives the model (``"<situation> <question>
    Answer the question using a single word or phrase."``)."""

    id: str
    answer: str
    question_type: str
    scene_id: str = ""
    prompt: str = ""


def question_type(question: str) -> str:
    """SQA3D's bucketing by the first word of the question (situation excluded)."""
    text = question.lstrip().lower()
    for prefix in ("what", "is", "how", "can", "which"):
        if text[: len(prefix)] == prefix:
            return prefix
    return "others"


def load_annotations(path: str | Path) -> list[Question]:
    """Read Video-3D LLM's llava-style SQA3D file or the official balanced annotations."""
    path = Path(path)
    data = load_json_records(path)
    if isinstance(data, dict) and "annotations" in data:
        questions = _from_official(path, data)
    elif isinstance(data, list):
        questions = [_from_llava(record, where=f"{path} record {i}") for i, record in enumerate(data)]
    else:
        raise Vega3DError(
            f"{path}: expected a llava-style list or an official SQA3D file with 'annotations', found {type(data).__name__}"
        )
    unique_ids([q.id for q in questions], source=str(path))
    return questions


def _from_llava(record, *, where: str) -> Question:
    item_id = prediction_id(require(record, "id", where=where), where=where)
    where = f"{where} (id {item_id!r})"
    conversations = require(record, "conversations", where=where)
    if not isinstance(conversations, list) or len(conversations) < 2:
        raise Vega3DError(f"{where}: 'conversations' must hold the question and the answer turn")
    answer = require(conversations[1], "value", where=f"{where} conversations[1]")
    qtype = require(require(record, "metadata", where=where), "question_type", where=f"{where} metadata")
    if qtype not in QUESTION_TYPES:
        raise Vega3DError(f"{where}: unknown question_type {qtype!r}; expected one of {QUESTION_TYPES}")
    if not isinstance(answer, str):
        raise Vega3DError(f"{where}: answer must be a string, found {answer!r}")
    prompt = require(conversations[0], "value", where=f"{where} conversations[0]").replace("<image>", "").strip()
    scene_id = str(record.get("video", "")).split("/")[-1]
    return Question(id=item_id, answer=answer, question_type=qtype, scene_id=scene_id, prompt=prompt)


def _from_official(path: Path, data: dict) -> list[Question]:
    questions_path = path.with_name(path.name.replace("sqa_annotations", "questions"))
    if questions_path == path or not questions_path.is_file():
        raise Vega3DError(
            f"{path}: official SQA3D annotations need the questions file next to them, expected {questions_path}"
        )
    question_file = load_json_records(questions_path)
    texts, situations = {}, {}
    for i, q in enumerate(require(question_file, "questions", where=str(questions_path))):
        where = f"{questions_path} question {i}"
        qid = prediction_id(require(q, "question_id", where=where), where=where)
        texts[qid] = require(q, "question", where=where)
        situations[qid] = require(q, "situation", where=where)
    out = []
    for i, ann in enumerate(data["annotations"]):
        where = f"{path} annotation {i}"
        item_id = prediction_id(require(ann, "question_id", where=where), where=where)
        answers = require(ann, "answers", where=where)
        if not isinstance(answers, list) or len(answers) != 1:
            raise Vega3DError(f"{where} (id {item_id!r}): expected exactly one answer, found {answers!r}")
        answer = require(answers[0], "answer", where=f"{where} answers[0]")
        if item_id not in texts:
            raise Vega3DError(f"{where}: question_id {item_id!r} is not in {questions_path}")
        prompt = f"{situations[item_id]} {texts[item_id]} Answer the question using a single word or phrase."
        out.append(
            Question(
                id=item_id,
                answer=answer,
                question_type=question_type(texts[item_id]),
                scene_id=str(ann.get("scene_id", "")),
                prompt=prompt,
            )
        )
    return out


def evaluate(predictions, annotations) -> dict:
    """Score predictions (JSONL path, ``{id: {"prediction": str}}`` or records) against
    annotations (path or :func:`load_annotations` output); fractions in [0, 1]."""
    questions = as_annotations(annotations, load_annotations, Question)
    preds = as_predictions(predictions, BENCHMARK)
    match_ids(preds, [q.id for q in questions], BENCHMARK)

    em: dict[str, list[float]] = {t: [] for t in QUESTION_TYPES}
    em_refined: dict[str, list[float]] = {t: [] for t in QUESTION_TYPES}
    for q in questions:
        pred, answer = clean_answer(preds[q.id]["prediction"]), clean_answer(q.answer)
        em[q.question_type].append(float(pred == answer))
        em_refined[q.question_type].append(float(exact_match_refined(pred, [answer])))
    all_em = [s for t in QUESTION_TYPES for s in em[t]]
    all_em_refined = [s for t in QUESTION_TYPES for s in em_refined[t]]
    return {
        "benchmark": BENCHMARK,
        "em": finite_mean(all_em),
        "em_refined": finite_mean(all_em_refined),
        "em_by_type": {t: finite_mean(em[t]) for t in QUESTION_TYPES},
        "em_refined_by_type": {t: finite_mean(em_refined[t]) for t in QUESTION_TYPES},
        "counts": {
            "expected": len(questions),
            "scored": len(all_em),
            "per_type": {t: len(em[t]) for t in QUESTION_TYPES},
        },
    }


def table_rows(result: dict) -> tuple[list[str], list[tuple[str, list]]]:
    """Columns EM, EM-R, then per-type rows: EM and EM-R for each question type."""
    columns = ["All"] + [t.capitalize() for t in QUESTION_TYPES]
    rows = [
        ("EM", [result["em"]] + [result["em_by_type"][t] for t in QUESTION_TYPES]),
        ("EM-R", [result["em_refined"]] + [result["em_refined_by_type"][t] for t in QUESTION_TYPES]),
    ]
    return columns, rows
