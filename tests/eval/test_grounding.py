import json
from pathlib import Path

import pytest

from vega3d import Vega3DError
from vega3d.eval import multi3drefer, scanrefer
from vega3d.eval.multi3drefer import f1_scores

FIXTURES = Path(__file__).parent / "fixtures"


def _write(tmp_path, lines, name="pred.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- ScanRefer


def test_scanrefer_fixture_by_hand():
    result = scanrefer.evaluate(FIXTURES / "scanrefer_pred.jsonl", FIXTURES / "scanrefer_val_llava_style.json")
    # ious: identical ~1, shifted half 1/3, nested exact half (official eps -> just below 0.5), touching 0
    assert result["acc@0.25"] == pytest.approx(3 / 4)
    assert result["acc@0.5"] == pytest.approx(1 / 4)
    assert result["splits"]["unique"] == {"acc@0.25": 1.0, "acc@0.5": 0.5}
    assert result["splits"]["multiple"] == {"acc@0.25": 0.5, "acc@0.5": 0.0}
    assert result["ious"]["3"] == 0.0
    assert result["counts"] == {"expected": 4, "scored": 4, "per_split": {"unique": 2, "multiple": 2}}


def test_scanrefer_nan_box_names_record(tmp_path):
    lines = (FIXTURES / "scanrefer_pred.jsonl").read_text().splitlines()
    lines[1] = '{"id": 1, "box": [0.5, NaN, 0, 1, 1, 1]}'
    with pytest.raises(Vega3DError, match=r"pred.jsonl:2 \(id '1'\) field 'box': box has a non-finite value"):
        scanrefer.evaluate(_write(tmp_path, lines), FIXTURES / "scanrefer_val_llava_style.json")


def test_scanrefer_wrong_box_length(tmp_path):
    lines = (FIXTURES / "scanrefer_pred.jsonl").read_text().splitlines()
    lines[0] = '{"id": 0, "box": [1, 1, 1, 2, 2]}'
    with pytest.raises(Vega3DError, match=r"id '0'\) field 'box': expected 6 numbers"):
        scanrefer.evaluate(_write(tmp_path, lines), FIXTURES / "scanrefer_val_llava_style.json")


def test_scanrefer_unknown_split(tmp_path):
    data = json.loads((FIXTURES / "scanrefer_val_llava_style.json").read_text())
    data[0]["metadata"]["question_type"] = "single"
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    with pytest.raises(
        Vega3DError,
        match=r"record 0 \(id '.*'\) field 'metadata.question_type': expected one of \('unique', 'multiple'\), found str 'single'",
    ):
        scanrefer.load_annotations(path)


# ---------------------------------------------------------------- Multi3DRefer


def test_f1_zero_target_rule():
    assert f1_scores([], []) == (1.0, 1.0)  # nothing to find, nothing found
    assert f1_scores([[0, 0, 0, 1, 1, 1]], []) == (0.0, 0.0)  # false positive on a zero-target query
    assert f1_scores([], [[0, 0, 0, 1, 1, 1]]) == (0.0, 0.0)  # missed target


def test_f1_more_predictions_than_targets():
    gt = [[0, 0, 0, 1, 1, 1]]
    preds = [[5, 5, 5, 1, 1, 1], [0, 0, 0, 1, 1, 1], [9, 9, 9, 1, 1, 1]]
    # one true positive; F1 = 2*1 / (3 + 1)
    assert f1_scores(preds, gt) == (0.5, 0.5)


def test_f1_hungarian_beats_prediction_order_greedy():
    # 1-D intervals (unit y/z): X=[0.1,1.1], Y=[0.6,1.6]; A=[0.2,1.4], B=[0,1]
    # IoU(A,X)=0.9/1.3, IoU(A,Y)=0.8/1.4, IoU(B,X)=0.9/1.1, IoU(B,Y)=0.4/1.6
    # greedy in prediction order pairs A-X, B-Y (one hit at 0.5); Hungarian pairs A-Y, B-X (two hits)
    gts = [[0.6, 0, 0, 1.0, 1, 1], [1.1, 0, 0, 1.0, 1, 1]]
    preds = [[0.8, 0, 0, 1.2, 1, 1], [0.5, 0, 0, 1.0, 1, 1]]
    assert f1_scores(preds, gts) == (1.0, 1.0)


def test_multi3drefer_fixture_by_hand():
    result = multi3drefer.evaluate(FIXTURES / "multi3drefer_pred.jsonl", FIXTURES / "multi3drefer_val_llava_style.json")
    per_query_25 = [1.0, 0.0, 2 / 3, 0.0, 1.0]
    per_query_50 = [1.0, 0.0, 2 / 3, 0.0, 0.5]
    assert result["f1@0.25"] == pytest.approx(sum(per_query_25) / 5)
    assert result["f1@0.5"] == pytest.approx(sum(per_query_50) / 5)
    assert result["groups"]["zero"] == {"f1@0.25": 0.5, "f1@0.5": 0.5}
    assert result["groups"]["single"]["f1@0.25"] == pytest.approx(1 / 3)
    assert result["groups"]["multiple"] == {"f1@0.25": 1.0, "f1@0.5": 0.5}
    assert result["sub_splits"]["zt_wo_d"]["f1@0.5"] == 1.0
    assert result["counts"]["expected"] == 5


def test_multi3drefer_boxes_must_be_a_list(tmp_path):
    lines = (FIXTURES / "multi3drefer_pred.jsonl").read_text().splitlines()
    lines[0] = '{"id": 0, "boxes": null}'
    with pytest.raises(Vega3DError, match=r"id '0'\) field 'boxes': expected a list of boxes"):
        multi3drefer.evaluate(_write(tmp_path, lines), FIXTURES / "multi3drefer_val_llava_style.json")


def test_multi3drefer_nan_in_second_box_is_named(tmp_path):
    lines = (FIXTURES / "multi3drefer_pred.jsonl").read_text().splitlines()
    lines[4] = '{"id": 4, "boxes": [[2, 0, 0, 1, 1, 1], [0.5, 0, 0, 1, 1, Infinity]]}'
    with pytest.raises(Vega3DError, match=r"pred.jsonl:5 \(id '4'\) field 'boxes'\[1\]: box has a non-finite"):
        multi3drefer.evaluate(_write(tmp_path, lines), FIXTURES / "multi3drefer_val_llava_style.json")


def test_multi3drefer_wrong_benchmark_key(tmp_path):
    lines = (FIXTURES / "multi3drefer_pred.jsonl").read_text().splitlines()
    lines[0] = '{"id": 0, "box": [0, 0, 0, 1, 1, 1]}'
    with pytest.raises(Vega3DError, match=r"unknown key\(s\) \['box'\] for benchmark 'multi3drefer'"):
        multi3drefer.evaluate(_write(tmp_path, lines), FIXTURES / "multi3drefer_val_llava_style.json")
