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
from vega3d.eval.records import build_items, check_record, finite_mean, load_json_records, scoring_inputs, unique_ids

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
        unique_ids((q.id, f"{path} annotation {i}") for i, q in enumerate(questions))
        return questions
    return build_items(data, path, _from_llava, "llava-style SQA3D (or an official file with 'annotations')")


def _from_llava(record, where: str) -> Question:
    spec = {"id": "id", "conversations.0.value": "text", "conversations.1.value": "text"}
    f = check_record(record, {**spec, "metadata.question_type": QUESTION_TYPES}, where)
    return Question(
        id=f["id"],
        answer=f["conversations.1.value"],
        question_type=f["metadata.question_type"],
        scene_id=str(record.get("video", "")).split("/")[-1],
        prompt=f["conversations.0.value"].replace("<image>", "").strip(),
    )


def _from_official(path: Path, data: dict) -> list[Question]:
    """The official annotations (answers) with the questions file next to them (situation and
    question text): the prompt Video-3D LLM gives, the type by the question."""
    questions_path = path.with_name(path.name.replace("sqa_annotations", "questions"))
    texts = _official_questions(path, questions_path)
    out = []
    for i, ann in enumerate(data["annotations"]):
        where = f"{path} annotation {i}"
        a = check_record(ann, {"question_id": "id", "answers": "single", "answers.0.answer": "text"}, where)
        if a["question_id"] not in texts:
            raise Vega3DError(f"{where}: question_id {a['question_id']!r} is not in {questions_path}")
        situation, question = texts[a["question_id"]]
        prompt = f"{situation} {question} Answer the question using a single word or phrase."
        answer, qtype = a["answers.0.answer"], question_type(question)
        out.append(Question(a["question_id"], answer, qtype, str(ann.get("scene_id", "")), prompt))
    return out


def _official_questions(path: Path, questions_path: Path) -> dict[str, tuple[str, str]]:
    """``{question id: (situation, question)}`` from the questions file next to ``path``."""
    if questions_path == path or not questions_path.is_file():
        raise Vega3DError(
            f"{path}: official SQA3D annotations need the questions file next to them, expected {questions_path}"
        )
    spec = {"question_id": "id", "question": "text", "situation": "text"}
    questions = check_record(load_json_records(questions_path), {"questions": "list"}, str(questions_path))
    texts = {}
    for i, q in enumerate(questions["questions"]):
        q = check_record(q, spec, f"{questions_path} question {i}")
        texts[q["question_id"]] = (q["situation"], q["question"])
    return texts


def evaluate(predictions, annotations) -> dict:
    """Score predictions (JSONL path, ``{id: {"prediction": str}}`` or records) against
    annotations (path or :func:`load_annotations` output); fractions in [0, 1]."""
    questions, preds = scoring_inputs(predictions, annotations, BENCHMARK, load_annotations, Question)

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
