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
