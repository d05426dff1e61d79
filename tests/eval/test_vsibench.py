import json
import math
from pathlib import Path

import pytest

from vega3d import Vega3DError
from vega3d.eval import vsibench
from vega3d.eval.vsibench import mean_relative_accuracy, parse_answer

FIXTURES = Path(__file__).parent / "fixtures"
GT = FIXTURES / "vsibench_test.jsonl"
PRED = FIXTURES / "vsibench_pred.jsonl"


@pytest.mark.parametrize(
    "pred, gt, expected",
    [
        (4.0, 4.0, 1.0),
        (1.05, 1.0, 1.0),  # rel. error 0.05 passes every threshold (1 - 0.95 = 0.050000000000000044)
        (0.95, 1.0, 1.0),
        (1.5, 1.0, 0.1),  # 0.5 passes only theta = 0.50
        (1.45, 1.0, 0.2),
        (1.2, 1.0, 0.7),
        (1.35, 1.0, 0.3),  # 0.3500000000000001 > 1 - 0.65: float rounding fails theta = 0.65
        (0.65, 1.0, 0.4),  # exactly 0.35 passes theta = 0.65
        (1.1, 1.0, 0.9),  # 1 - linspace's 0.8999999999999999 = 0.10000000000000009 lets it pass
        (0.4, 1.0, 0.0),
        (5.0, 4.0, 0.6),
        (27.0, 20.5, 0.4),
    ],
)
def test_mra_boundaries_match_official_rounding(pred, gt, expected):
    assert mean_relative_accuracy(pred, gt) == pytest.approx(expected, abs=1e-12)


def test_mra_uses_ten_thresholds():
    assert len(vsibench.MRA_THRESHOLDS) == 10
    assert vsibench.MRA_THRESHOLDS[0] == 0.5 and vsibench.MRA_THRESHOLDS[-1] == 0.95


@pytest.mark.parametrize("pred", [math.nan, math.inf, -math.inf])
def test_mra_non_finite_prediction_scores_zero(pred):
    assert mean_relative_accuracy(pred, 2.0) == 0.0


@pytest.mark.parametrize("gt", [0.0, -1.0, math.nan])
def test_mra_rejects_bad_ground_truth(gt):
    with pytest.raises(Vega3DError, match="ground truth"):
        mean_relative_accuracy(1.0, gt)


@pytest.mark.parametrize(
    "text, parsed",
    [("3 chairs.", "3"), ("B.", "B"), ("B. chair", "B"), (" 3", ""), ("2.5", "2.5"), ("4\n", "4"), ("3...", "3")],
)
def test_parse_answer_is_official_fuzzy_matching(text, parsed):
    assert parse_answer(text) == parsed


def test_fixture_scores_by_hand():
    result = vsibench.evaluate(PRED, GT)
    tasks = result["tasks"]
    assert tasks["object_counting"] == pytest.approx(0.5)  # "4" right, "three" unparsable
    assert tasks["object_abs_distance"] == pytest.approx(0.9)  # 2.2 vs 2.0
    assert tasks["object_size_estimation"] == pytest.approx(1.0)  # "84." vs 80
    assert tasks["room_size_estimation"] == pytest.approx(0.4)  # 27 vs 20.5
    assert tasks["object_rel_distance"] == 1.0  # "B. chair"
    assert tasks["object_rel_direction"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert tasks["route_planning"] == 0.0  # first token "The"
    assert tasks["obj_appearance_order"] == 1.0
    assert result["overall"] == pytest.approx((0.5 + 0.9 + 1.0 + 0.4 + 1.0 + 0.5 + 0.0 + 1.0) / 8)
    assert result["counts"] == {
        "expected": 12,
        "scored": 12,
        "per_question_type": result["counts"]["per_question_type"],
        "tasks_present": 8,
        "tasks_total": 8,
    }
    assert result["question_types"]["object_rel_direction_easy"] == 0.5


def test_parquet_with_official_schema_parses_the_same(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    records = [json.loads(line) for line in GT.read_text().splitlines()]
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("dataset", pa.string()),
            ("scene_name", pa.string()),
            ("question_type", pa.string()),
            ("question", pa.string()),
            ("ground_truth", pa.string()),
            ("options", pa.list_(pa.string())),
        ]
    )
    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(records, schema=schema), path)
    assert vsibench.load_annotations(path) == vsibench.load_annotations(GT)
    assert vsibench.evaluate(PRED, path) == vsibench.evaluate(PRED, GT)


def _write(tmp_path, lines, name="pred.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _pred_lines():
    return PRED.read_text().splitlines()


def test_missing_prediction_is_an_error(tmp_path):
    with pytest.raises(Vega3DError, match=r"1 of 12 annotation ids have no prediction.*'11'"):
        vsibench.evaluate(_write(tmp_path, [line for line in _pred_lines() if '"id": 11,' not in line]), GT)


def test_extra_prediction_is_an_error(tmp_path):
    with pytest.raises(Vega3DError, match=r"not in the annotations.*'99'"):
        vsibench.evaluate(_write(tmp_path, _pred_lines() + ['{"id": 99, "prediction": "1"}']), GT)


def test_duplicate_prediction_names_both_lines(tmp_path):
    with pytest.raises(Vega3DError, match=r"pred.jsonl:13: duplicate id '1' \(first seen on line 1\)"):
        vsibench.evaluate(_write(tmp_path, _pred_lines() + ['{"id": "1", "prediction": "4"}']), GT)


def test_malformed_line_names_the_line(tmp_path):
    lines = _pred_lines()
    lines[2] = '{"id": 3, "prediction": "84."'
    with pytest.raises(Vega3DError, match=r"pred.jsonl:3: malformed JSON"):
        vsibench.evaluate(_write(tmp_path, lines), GT)


def test_unknown_key_names_record(tmp_path):
    lines = _pred_lines()
    lines[0] = '{"id": 1, "prediction": "4", "answer": "4"}'
    with pytest.raises(Vega3DError, match=r"pred.jsonl:1 \(id '1'\): unknown key\(s\) \['answer'\]"):
        vsibench.evaluate(_write(tmp_path, lines), GT)


def test_wrong_type_names_record(tmp_path):
    lines = _pred_lines()
    lines[0] = '{"id": 1, "prediction": 4}'
    with pytest.raises(Vega3DError, match=r"id '1'\) field 'prediction': expected a string"):
        vsibench.evaluate(_write(tmp_path, lines), GT)


def test_unknown_question_type_in_annotations(tmp_path):
    gt = _write(tmp_path, ['{"id": 1, "question_type": "object_colour", "ground_truth": "red"}'], "gt.jsonl")
    with pytest.raises(
        Vega3DError, match=r"record 0 \(id '1'\) field 'question_type': expected one of .*found str 'object_colour'"
    ):
        vsibench.load_annotations(gt)


def test_relative_direction_needs_all_three_levels(tmp_path):
    gt = _write(tmp_path, ['{"id": 1, "question_type": "object_rel_direction_easy", "ground_truth": "A"}'], "gt.jsonl")
    with pytest.raises(Vega3DError, match="easy/medium/hard"):
        vsibench.evaluate([{"id": 1, "prediction": "A"}], gt)


def test_numerical_ground_truth_must_be_positive_number(tmp_path):
    gt = _write(tmp_path, ['{"id": 1, "question_type": "object_counting", "ground_truth": "many"}'], "gt.jsonl")
    with pytest.raises(Vega3DError, match="number > 0"):
        vsibench.load_annotations(gt)


def test_prompts_follow_official_doc_to_text():
    questions = {q.id: q for q in vsibench.load_annotations(GT)}
    assert questions["1"].prompt == (
        "These are frames of a video.\nHow many chair(s) are in this room?\n"
        "Please answer the question using a single word or phrase."
    )
    assert questions["6"].prompt == (
        "These are frames of a video.\n"
        "If I am standing by the bed and facing the door, is the lamp to my left or to my right?\n"
        "Options:\nA. left\nB. right\n"
        "Answer with the option's letter from the given choices directly."
    )
    assert questions["6"].video_path("/data/vsibench") == Path("/data/vsibench/arkitscenes/41069025.mp4")
