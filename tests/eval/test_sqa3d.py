import json
from pathlib import Path

import pytest

from vega3d import Vega3DError
from vega3d.eval import sqa3d

FIXTURES = Path(__file__).parent / "fixtures"
LLAVA = FIXTURES / "sqa3d_test_llava_style.json"
OFFICIAL = FIXTURES / "v1_balanced_sqa_annotations_test_scannetv2.json"
PRED = FIXTURES / "sqa3d_pred.jsonl"


@pytest.mark.parametrize(
    "question, qtype",
    [
        ("What is on my left?", "what"),
        ("  is the door open?", "is"),
        ("Isn't it dark?", "is"),  # prefix rule, as in SQA3D/LEO
        ("How many chairs?", "how"),
        ("Can I sit here?", "can"),
        ("Which way is the door?", "which"),
        ("Where is the lamp?", "others"),
        ("Does it have a lid?", "others"),
    ],
)
def test_question_type_rule(question, qtype):
    assert sqa3d.question_type(question) == qtype


def test_fixture_scores_by_hand():
    result = sqa3d.evaluate(PRED, LLAVA)
    # Table./table, no/yes, two/2, yes/yes, letf/left (typo fix), blackchair/black chair (EM-R only)
    assert result["em"] == pytest.approx(4 / 6)
    assert result["em_refined"] == pytest.approx(5 / 6)
    assert result["em_by_type"] == {"what": 1.0, "is": 0.0, "how": 1.0, "can": 1.0, "which": 1.0, "others": 0.0}
    assert result["em_refined_by_type"]["others"] == 1.0
    assert result["counts"]["expected"] == 6 and result["counts"]["scored"] == 6


def test_official_files_parse_to_the_same_questions():
    assert sqa3d.load_annotations(OFFICIAL) == sqa3d.load_annotations(LLAVA)
    assert sqa3d.evaluate(PRED, OFFICIAL) == sqa3d.evaluate(PRED, LLAVA)


def test_official_annotations_need_questions_file(tmp_path):
    path = tmp_path / "v1_balanced_sqa_annotations_test_scannetv2.json"
    path.write_text(OFFICIAL.read_text())
    with pytest.raises(Vega3DError, match="questions file"):
        sqa3d.load_annotations(path)


def test_unknown_question_type_in_annotations(tmp_path):
    data = json.loads(LLAVA.read_text())
    data[0]["metadata"]["question_type"] = "where"
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    with pytest.raises(
        Vega3DError, match=r"\(id '.*'\) field 'metadata.question_type': expected one of \('what', .*found str 'where'"
    ):
        sqa3d.load_annotations(path)


def test_duplicate_annotation_id(tmp_path):
    data = json.loads(LLAVA.read_text())
    data.append(data[0])
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    with pytest.raises(Vega3DError, match="appears more than once"):
        sqa3d.load_annotations(path)


def test_prompt_is_situation_then_question():
    q = sqa3d.load_annotations(LLAVA)[0]
    assert q.prompt == "I am facing the window. What is on my left? Answer the question using a single word or phrase."
    assert q.scene_id == "scene0249_00"


def test_official_annotation_needs_exactly_one_answer(tmp_path):
    data = json.loads(OFFICIAL.read_text())
    data["annotations"][0]["answers"].append({"answer": "two"})
    path = tmp_path / OFFICIAL.name  # with the questions file next to it
    path.write_text(json.dumps(data))
    questions = OFFICIAL.with_name(OFFICIAL.name.replace("sqa_annotations", "questions"))
    (tmp_path / questions.name).write_text(questions.read_text())
    with pytest.raises(Vega3DError, match=r"annotation 0 \(id '.*'\) field 'answers': expected a list of exactly one"):
        sqa3d.load_annotations(path)
