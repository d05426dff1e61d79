import json

import pytest

from vega3d import Vega3DError
from vega3d.eval.records import PREDICTION_FIELDS, as_predictions, read_predictions, write_predictions


def test_write_then_read_roundtrip(tmp_path):
    path = tmp_path / "out" / "preds.jsonl"
    n = write_predictions(path, "multi3drefer", [{"id": 3, "boxes": []}, {"id": "q4", "boxes": [[0, 0, 0, 1, 1, 1]]}])
    assert n == 2
    assert read_predictions(path, "multi3drefer") == {
        "3": {"boxes": []},
        "q4": {"boxes": [[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]]},
    }
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["3", "q4"]


def test_write_rejects_bad_records_and_writes_nothing(tmp_path):
    path = tmp_path / "preds.jsonl"
    with pytest.raises(Vega3DError, match=r"predictions\[1\] \(id '2'\) field 'box': box has a non-finite value"):
        write_predictions(
            path, "scanrefer", [{"id": 1, "box": [0, 0, 0, 1, 1, 1]}, {"id": 2, "box": [0, 0, 0, float("nan"), 1, 1]}]
        )
    assert not path.exists()


def test_scan2cap_box_is_optional_and_may_be_null():
    preds = as_predictions([{"id": 0, "prediction": "a chair"}, {"id": 1, "prediction": "", "box": None}], "scan2cap")
    assert preds == {"0": {"prediction": "a chair"}, "1": {"prediction": "", "box": None}}


def test_mapping_input_and_duplicate_after_normalisation():
    assert as_predictions({7: {"prediction": "x"}}, "sqa3d") == {"7": {"prediction": "x"}}
    with pytest.raises(Vega3DError, match="duplicate id '7'"):
        as_predictions([{"id": 7, "prediction": "x"}, {"id": "7", "prediction": "y"}], "sqa3d")


@pytest.mark.parametrize(
    "line, match",
    [
        ("[1, 2]", r"p.jsonl:2: expected a JSON object"),
        ('{"prediction": "x"}', r"p.jsonl:2: missing field 'id'"),
        ('{"id": 1.5, "prediction": "x"}', r"p.jsonl:2 field 'id': expected an integer or a string, found float 1.5"),
        ('{"id": true, "prediction": "x"}', r"field 'id': expected an integer or a string, found bool True"),
        ('{"id": 2}', r"p.jsonl:2 \(id '2'\): missing field 'prediction'"),
        ('{"id": 2, "prediction": "x"', r"p.jsonl:2: malformed JSON"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, match):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": 1, "prediction": "a"}\n' + line + "\n")
    with pytest.raises(Vega3DError, match=match):
        read_predictions(path, "scanqa")


def test_blank_lines_are_ignored(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('\n{"id": 1, "prediction": "a"}\n\n   \n{"id": 2, "prediction": "b"}\n')
    assert list(read_predictions(path, "vsibench")) == ["1", "2"]


def test_unknown_benchmark():
    with pytest.raises(Vega3DError, match="unknown benchmark 'nr3d'"):
        as_predictions([], "nr3d")


def test_every_benchmark_has_a_schema():
    from vega3d.eval import BENCHMARKS

    assert set(PREDICTION_FIELDS) == set(BENCHMARKS)


def test_id_mismatch_error_shows_both_id_styles():
    from vega3d.eval.records import match_ids

    with pytest.raises(
        Vega3DError,
        match=r"have no prediction \(first: \['val-scene0011-0'\]\).*look like \['scanqa_val-scene0011-0_0'\]",
    ):
        match_ids({"scanqa_val-scene0011-0_0": {}}, ["val-scene0011-0"], "scanqa")


def test_evaluate_rejects_raw_dicts_as_annotations():
    from vega3d.eval import scanrefer

    with pytest.raises(
        Vega3DError, match=r"annotations\[0\]: expected a path or the output of load_annotations \(Query items\)"
    ):
        scanrefer.evaluate([{"id": 0, "box": [0, 0, 0, 1, 1, 1]}], [{"id": 0, "box": [0, 0, 0, 1, 1, 1]}])


def test_mapping_values_must_be_records():
    with pytest.raises(Vega3DError, match=r"predictions\[7\]: expected a JSON object, found str"):
        as_predictions({7: "x"}, "sqa3d")


def test_run_arguments_are_declared_once():
    from vega3d.eval.runners.questions import check_arguments

    check_arguments("sqa3d", num_frames=8, batch_size=None, limit=1, max_new_tokens=16)
    with pytest.raises(
        Vega3DError, match=r"^benchmark: got 'nr3d'; expected one of the runner's benchmarks \('vsibench'"
    ):
        check_arguments("nr3d")
    for name, value in [("num_frames", 0), ("batch_size", True), ("limit", 2.0), ("max_new_tokens", "8")]:
        with pytest.raises(Vega3DError, match=f"^{name}: got {value!r}; expected None or a positive integer$"):
            check_arguments("vsibench", **{name: value})


def test_annotation_ids_are_unique_and_both_places_named(tmp_path):
    from vega3d.eval import scanrefer

    path = tmp_path / "gt.json"
    box = [0, 0, 0, 1, 1, 1]
    path.write_text(json.dumps([{"id": i, "box": box, "metadata": {"question_type": "unique"}} for i in (1, 2, 1)]))
    with pytest.raises(Vega3DError, match=r"gt.json record 2: duplicate id '1' \(first seen on .*gt.json record 0\)"):
        scanrefer.load_annotations(path)
