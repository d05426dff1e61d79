"""`vega3d demo` on a fresh machine: builds the stand-in model, runs, writes its outputs."""

import json

from vega3d import cli


def test_demo_runs_from_scratch_and_says_it_is_a_stand_in(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing cached: a fresh machine
    out = tmp_path / "demo"
    assert cli.main(["demo", "--frames", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
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
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cli.main(["demo", "--frames", "3", "--out", str(tmp_path / "demo")]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # the explanation wraps its lines
    assert "0.5 is chance" in printed and "position-controlled AUROC 0." in printed and "(the headline" in printed
    assert (
        "the control scores high on random negatives" in printed and "can beat a model with random weights" in printed
    )
    assert "top row: frames; bottom row: PCA of their features" in printed


def test_every_demo_option_has_help():
    import argparse

    from vega3d import demo

    subparsers = argparse.ArgumentParser().add_subparsers()
    demo.register(subparsers)
    for action in subparsers.choices["demo"]._actions:
        assert action.help, action.option_strings
