import subprocess
import sys

import pytest

from vega3d import Vega3DError, cli


def test_help_lists_and_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    assert "vega3d" in capsys.readouterr().out


def test_project_error_is_a_value_error():
    assert issubclass(Vega3DError, ValueError)


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "vega3d.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "vega3d" in out.stdout


@pytest.mark.parametrize("device, message", [("gpu", "not a torch device"), ("cuda:99", "cuda")])
def test_unusable_device_is_a_one_line_error_before_any_work(device, message, capsys, tmp_path):
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 99:  # pragma: no cover
        pytest.skip("machine has 100 GPUs")
    assert cli.main(["demo", "--device", device, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--device" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing was done


def test_no_subcommand_is_a_usage_error(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_overrides_may_follow_the_options_and_nothing_else_slips_through(capsys):
    from vega3d.cli import _parse, build_parser

    parser = build_parser()
    args = _parse(parser, ["train", "c.yaml", "train.lr=1e-4", "--no-progress", "train.max_steps=3"])
    assert args.no_progress and args.overrides == ["train.lr=1e-4", "train.max_steps=3"]
    args = _parse(parser, ["train-world", "w.yaml", "--no-progress", "train.seed=1"])
    assert args.overrides == ["train.seed=1"]
    for argv in (["train", "c.yaml", "--no-progress", "--bogus"], ["train", "c.yaml", "--no-progress", "word"]):
        with pytest.raises(SystemExit) as exc:
            _parse(parser, argv)
        assert exc.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
