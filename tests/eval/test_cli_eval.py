"""``vega3d eval`` end to end on the hand-made fixtures, one benchmark each."""

import json
from pathlib import Path

import pytest

from vega3d import cli
from vega3d.eval import multi3drefer, scan2cap, scanqa, scanrefer, sqa3d, vsibench
from vega3d.files import json_safe

FIXTURES = Path(__file__).parent / "fixtures"

CASES = {
    "vsibench": (vsibench, "vsibench_pred.jsonl", "vsibench_test.jsonl", "Avg.  Obj. Count  Abs. Dist."),
    "scanrefer": (scanrefer, "scanrefer_pred.jsonl", "scanrefer_val_llava_style.json", "Acc@0.25  Acc@0.5"),
    "multi3drefer": (multi3drefer, "multi3drefer_pred.jsonl", "multi3drefer_val_llava_style.json", "F1@0.25  F1@0.5"),
    "sqa3d": (sqa3d, "sqa3d_pred.jsonl", "sqa3d_test_llava_style.json", "All    What      Is"),
    "scanqa": (scanqa, "scanqa_pred.jsonl", "scanqa_val_llava_style.json", "CIDEr      EM  BLEU-1"),
    "scan2cap": (scan2cap, "scan2cap_pred.jsonl", "scan2cap_val_llava_style.json", "CIDEr@0.5  BLEU-4@0.5"),
}


@pytest.mark.parametrize("benchmark", list(CASES))
def test_eval_cli_prints_table_and_writes_json(benchmark, tmp_path, capsys, caption_scorer, cli_uses_shared_scorer):
    module, pred, gt, header = CASES[benchmark]
    out = tmp_path / "result.json"
    code = cli.main(["eval", benchmark, "--pred", str(FIXTURES / pred), "--gt", str(FIXTURES / gt), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    n = sum(1 for line in (FIXTURES / pred).read_text().splitlines() if line.strip())
    assert f"{benchmark}: scored {n} of {n} expected items" in printed
    assert header in printed and "paper: VEGA-3D" in printed
    written = json.loads(out.read_text())
    kwargs = {"scorer": caption_scorer} if benchmark in ("scanqa", "scan2cap") else {}
    direct = json.loads(json.dumps(json_safe(module.evaluate(FIXTURES / pred, FIXTURES / gt, **kwargs))))
    assert {k: v for k, v in written.items() if k not in ("predictions", "annotations")} == direct
    assert written["benchmark"] == benchmark


def test_scanrefer_table_values(capsys):
    cli.main(
        [
            "eval",
            "scanrefer",
            "--pred",
            str(FIXTURES / "scanrefer_pred.jsonl"),
            "--gt",
            str(FIXTURES / "scanrefer_val_llava_style.json"),
            "--no-paper",
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].split() == ["overall", "75.0", "25.0"]
    assert not any(line.startswith("paper:") for line in lines)


def test_bad_prediction_file_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 0, "box": [1, 1, 1, 2, 2, 2]}\n{"id": 1, "box": [0.5, 0, 0, NaN, 1, 1]}\n')
    code = cli.main(["eval", "scanrefer", "--pred", str(bad), "--gt", str(FIXTURES / "scanrefer_val_llava_style.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert "bad.jsonl:2 (id '1') field 'box': box has a non-finite value" in err


def test_missing_files_are_errors(tmp_path, capsys):
    code = cli.main(
        ["eval", "sqa3d", "--pred", str(tmp_path / "none.jsonl"), "--gt", str(FIXTURES / "sqa3d_test_llava_style.json")]
    )
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_ptb_flag_only_for_caption_benchmarks(capsys):
    code = cli.main(
        [
            "eval",
            "sqa3d",
            "--pred",
            str(FIXTURES / "sqa3d_pred.jsonl"),
            "--gt",
            str(FIXTURES / "sqa3d_test_llava_style.json"),
            "--ptb-tokenize",
        ]
    )
    assert code == 2 and "--ptb-tokenize" in capsys.readouterr().err


def test_unknown_benchmark_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval", "nr3d", "--pred", "p.jsonl", "--gt", "g.json"])
    assert exc.value.code == 2
