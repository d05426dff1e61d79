import json

import pytest

from vega3d import cli


def test_probe_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["probe", "synthetic", "--encoder", "pixels", "--frames", "6", "--synthetic-size", "64x96",
                     "--out", str(out), "--encoder-option", "stride=8", "--option", "min_motion_px=4",
                     "--option", "local_negative_px=[6, 18]", "--option", "recall_stride_px=8"])
    assert code == 0
    report = json.loads((out / "probe.json").read_text())
    assert report["encoder"]["name"] == "pixels" and report["scene"]["num_frames"] == 6
    res, ctrl = report["result"], report["position_control"]
    assert res["num_pairs"] > 0 and res["grid_size"] == [8, 12] and ctrl["grid_size"] == [8, 12]
    assert res["options"]["local_negative_px"] == [6.0, 18.0]
    assert abs(ctrl["auroc_local"] - 0.5) < 0.1  # the control is reported with every run
    for name in ("probe_heatmaps.png", "probe_pca.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    assert "position-controlled" in text and "position-only control" in text
    assert (out / "probe.txt").read_text().strip() in text


def test_probe_cli_sweep_blocks_on_tiny_wan(tmp_path, capsys):
    from vega3d.simulator.tiny import save_tiny_wan

    model = save_tiny_wan(tmp_path / "wan", num_layers=3)
    out = tmp_path / "sweep"
    code = cli.main(["probe", "synthetic", "--encoder", "wan", "--model", str(model), "--frames", "5",
                     "--synthetic-size", "64x96", "--height", "64", "--width", "96", "--sweep", "blocks=0,2",
                     "--out", str(out), "--option", "min_motion_px=4", "--option", "recall_stride_px=16"])
    assert code == 0
    report = json.loads((out / "probe.json").read_text())
    assert [r["block"] for r in report["rows"]] == [0, 2]
    assert all(r["encoder"]["stand_in"] for r in report["rows"])
    assert all(r["encoder"]["vae_dtype"] == "float32" for r in report["rows"])  # --vae-dtype's default
    assert report["rows"][0]["result"]["auroc"] != report["rows"][1]["result"]["auroc"]
    assert (out / "probe_sweep.png").read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    assert "position" in text and "STAND-IN" in text  # a random-weight model always says so


def test_probe_cli_vae_dtype_on_tiny_wan(tmp_path):
    from vega3d.simulator.tiny import save_tiny_wan

    model = save_tiny_wan(tmp_path / "wan", num_layers=2)
    out = tmp_path / "half_vae"
    code = cli.main(["probe", "synthetic", "--encoder", "wan", "--model", str(model), "--frames", "3",
                     "--synthetic-size", "32x48", "--height", "32", "--width", "48", "--block", "1",
                     "--vae-dtype", "bfloat16", "--out", str(out), "--no-figures", "--option", "min_motion_px=2",
                     "--option", "recall_stride_px=16"])
    assert code == 0
    report = json.loads((out / "probe.json").read_text())
    assert report["encoder"]["vae_dtype"] == "bfloat16" and report["encoder"]["dtype"] == "float32"
    assert "--vae-dtype bfloat16" in report["command"]


@pytest.mark.parametrize("argv,message", [
    (["--sweep", "layers=1"], "expected blocks="),
    (["--sweep", "blocks=1"], "needs the 'wan' encoder"),
    (["--option", "voxel=1"], "unknown probe option"),
    (["--option", "nonsense"], "KEY=VALUE"),
    (["--block", "3"], "unknown option"),
    (["--vae-dtype", "bfloat16"], "unknown option"),  # pixels has no VAE
    (["--frames", "1"], "at least 2 frames"),
])
def test_probe_cli_errors(tmp_path, capsys, argv, message):
    code = cli.main(["probe", "synthetic", "--encoder", "pixels", "--synthetic-size", "32x48", "--frames", "3",
                     "--out", str(tmp_path), "--no-figures", *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_probe_cli_missing_scene_folder(tmp_path, capsys):
    code = cli.main(["probe", str(tmp_path / "nope"), "--encoder", "pixels", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["sensreader", "posed_images"])
def test_probe_cli_on_a_scan_folder(tmp_path, layout):
    from vega3d.scenes import synthetic_scene, write_scene

    folder = tmp_path / "scan"
    write_scene(synthetic_scene(num_frames=6, height=64, width=96, depth_size=(48, 72)), folder, layout=layout)
    out = tmp_path / "out"
    code = cli.main(["probe", str(folder), "--encoder", "position", "--frames", "4", "--out", str(out), "--no-figures",
                     "--option", "min_motion_px=4", "--option", "recall_stride_px=8"])
    assert code == 0
    report = json.loads((out / "probe.json").read_text())
    assert report["scene"]["num_frames"] == 4 and report["scene"]["depth_size"] == [48, 72]
    assert report["result"]["pose_consistency"] > 0.6  # poses and depth survive the round trip
    assert not list(out.glob("*.png"))
