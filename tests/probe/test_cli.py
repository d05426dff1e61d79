import json

import pytest

from vega3d import cli


def test_probe_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(
        [
            "probe",
            "synthetic",
            "--encoder",
            "pixels",
            "--frames",
            "6",
            "--synthetic-size",
            "64x96",
            "--out",
            str(out),
            "--encoder-option",
            "stride=8",
            "--option",
            "min_motion_px=4",
            "--option",
            "local_negative_px=[6, 18]",
            "--option",
            "recall_stride_px=8",
        ]
    )
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
    from vega3d.standin.wan import save_tiny_wan

    model = save_tiny_wan(tmp_path / "wan", num_layers=3)
    out = tmp_path / "sweep"
    code = cli.main(
        [
            "probe",
            "synthetic",
            "--encoder",
            "wan",
            "--model",
            str(model),
            "--frames",
            "5",
            "--synthetic-size",
            "64x96",
            "--height",
            "64",
            "--width",
            "96",
            "--sweep",
            "blocks=0,2",
            "--out",
            str(out),
            "--option",
            "min_motion_px=4",
            "--option",
            "recall_stride_px=16",
        ]
    )
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
    from vega3d.standin.wan import save_tiny_wan

    model = save_tiny_wan(tmp_path / "wan", num_layers=2)
    out = tmp_path / "half_vae"
    code = cli.main(
        [
            "probe",
            "synthetic",
            "--encoder",
            "wan",
            "--model",
            str(model),
            "--frames",
            "3",
            "--synthetic-size",
            "32x48",
            "--height",
            "32",
            "--width",
            "48",
            "--block",
            "1",
            "--vae-dtype",
            "bfloat16",
            "--out",
            str(out),
            "--no-figures",
            "--option",
            "min_motion_px=2",
            "--option",
            "recall_stride_px=16",
        ]
    )
    assert code == 0
    report = json.loads((out / "probe.json").read_text())
    assert report["encoder"]["vae_dtype"] == "bfloat16" and report["encoder"]["dtype"] == "float32"
    assert "--vae-dtype bfloat16" in report["command"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--sweep", "layers=1"], "expected blocks="),
        (["--sweep", "blocks=1"], "needs the 'wan' encoder"),
        (["--option", "voxel=1"], "unknown probe option"),
        (["--option", "min_motion_px=abc"], "probe option min_motion_px='abc' (str): expected a number >= 0"),
        (
            ["--option", "points_per_frame=1.5"],
            "probe option points_per_frame=1.5 (float): expected a positive integer",
        ),
        (["--option", "local_negative_px=[8]"], "probe option local_negative_px=(8.0,) (tuple): expected [low, high]"),
        (["--option", "nonsense"], "KEY=VALUE"),
        (["--block", "3"], "unknown option"),
        (["--vae-dtype", "bfloat16"], "unknown option"),  # pixels has no VAE
        (["--frames", "1"], "at least 2 frames"),
    ],
)
def test_probe_cli_errors(tmp_path, capsys, argv, message):
    code = cli.main(
        [
            "probe",
            "synthetic",
            "--encoder",
            "pixels",
            "--synthetic-size",
            "32x48",
            "--frames",
            "3",
            "--out",
            str(tmp_path),
            "--no-figures",
            *argv,
        ]
    )
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
    code = cli.main(
        [
            "probe",
            str(folder),
            "--encoder",
            "position",
            "--frames",
            "4",
            "--out",
            str(out),
            "--no-figures",
            "--option",
            "min_motion_px=4",
            "--option",
            "recall_stride_px=8",
        ]
    )
    assert code == 0
    report = json.loads((out / "probe.json").read_text())
    assert report["scene"]["num_frames"] == 4 and report["scene"]["depth_size"] == [48, 72]
    assert report["result"]["pose_consistency"] > 0.6  # poses and depth survive the round trip
    assert not list(out.glob("*.png"))


def _scan_with_problems(tmp_path, num_frames=6):
    """A posed_images scan without depth_intrinsic.txt and with frame 3's pose invalid (-inf)."""
    from vega3d.scenes import synthetic_scene, write_scene

    folder = tmp_path / "scan"
    write_scene(synthetic_scene(num_frames=num_frames, height=64, width=96), folder, layout="posed_images")
    (folder / "depth_intrinsic.txt").unlink()
    (folder / "00003.txt").write_text("-inf -inf -inf -inf\n" * 4)
    return folder


def test_probe_cli_reports_what_loading_changed(tmp_path, capsys, monkeypatch):
    import sys

    folder = _scan_with_problems(tmp_path)
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "stderr", sys.stdout)  # bars, log records and the table on one stream, in order
    code = cli.main(
        [
            "probe",
            str(folder),
            "--encoder",
            "pixels",
            "--frames",
            "100",
            "--out",
            str(out),
            "--encoder-option",
            "stride=8",
            "--option",
            "min_motion_px=4",
            "--option",
            "recall_stride_px=8",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    report = json.loads((out / "probe.json").read_text())
    warnings = report["warnings"]
    assert "asked for 100 frames, the input has 6: using all 6" in warnings
    assert any("no depth intrinsics file" in w and "intrinsic.txt" in w for w in warnings)
    assert any("frame ids [3]" in w and "invalid" in w for w in warnings)
    for w in warnings:
        assert f"warning: {w}" in text and f"warning: {w}" in (out / "probe.txt").read_text()
    # the table explains the frame count
    assert "5 of 6 (excluded, invalid pose: frame id 3)" in text
    assert any("frame ids [3]" in n for n in report["result"]["notes"])
    # hygiene: the loader's log record and the table each start on their own line, and no
    # progress bar is drawn once the table starts
    lines = text.replace("\r", "\n").split("\n")
    assert any(line.startswith(f"{folder}: no depth_intrinsic.txt") for line in lines)
    assert any(line.startswith("pixels on scan (6 frames") for line in lines)
    tail = text[text.index("pixels on scan (6 frames") :]
    assert "stage/s" not in tail and "chunk/s" not in tail and "probe:" not in tail
    assert tail.rstrip().endswith("and PNG figures")


def test_probe_cli_says_why_the_paper_score_is_na(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(
        [
            "probe",
            "synthetic",
            "--encoder",
            "pixels",
            "--frames",
            "4",
            "--synthetic-size",
            "64x96",
            "--out",
            str(out),
            "--no-figures",
            "--encoder-option",
            "stride=32",
            "--option",
            "min_motion_px=4",
            "--option",
            "recall_stride_px=8",
            "--option",
            "paper_voxel_size=0.0001",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    report = json.loads((out / "probe.json").read_text())
    assert report["result"]["paper_score"] is None
    assert "n/a (see note)" in text and "note: paper score n/a: none of the 3 adjacent frame pairs shares" in text
    assert any(n.startswith("paper score n/a") for n in report["result"]["notes"])


def test_probe_cli_hf_layer_out_of_range(tmp_path, capsys):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    model = tmp_path / "clip"
    CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=32,
            patch_size=16,
        )
    ).save_pretrained(model)
    code = cli.main(
        [
            "probe",
            "synthetic",
            "--encoder",
            "hf",
            "--model",
            str(model),
            "--layer",
            "9",
            "--encoder-option",
            "mean=[0.5,0.5,0.5]",
            "--encoder-option",
            "std=[0.5,0.5,0.5]",
            "--frames",
            "3",
            "--synthetic-size",
            "32x48",
            "--out",
            str(tmp_path / "o"),
            "--no-figures",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "layer 9" in err and "3 hidden states" in err and "[-3, 2]" in err


def _probe(tmp_path, *argv):
    return cli.main(["probe", *argv, "--frames", "3", "--out", str(tmp_path / "o"), "--no-figures"])


def test_probe_cli_hf_without_model_is_one_line(tmp_path, capsys):
    assert _probe(tmp_path, "synthetic", "--encoder", "hf") == 2
    err = capsys.readouterr().err
    assert "encoder 'hf' needs model=" in err and "--model" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_probe_cli_on_a_file_says_it_is_a_file(tmp_path, capsys):
    (tmp_path / "scene.txt").write_text("x")
    assert _probe(tmp_path, str(tmp_path / "scene.txt"), "--encoder", "pixels") == 2
    err = capsys.readouterr().err
    assert "scene.txt: is a file, not a folder; expected a scan folder" in err and "does not exist" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--encoder", "nosuch"], "unknown encoder 'nosuch'"),
        (["--encoder", "wan"], "encoder 'wan' needs model="),
        (["--encoder", "pixels", "--layer", "3"], "unknown option(s) ['layer']"),
        (["--encoder", "pixels", "--sweep", "blocks=1"], "needs the 'wan' encoder"),
    ],
)
def test_probe_cli_rejects_a_bad_encoder_before_loading_anything(tmp_path, capsys, monkeypatch, argv, message):
    import vega3d.probe.run

    def must_not_load(*args, **kwargs):
        raise AssertionError("the scene was loaded before the encoder was checked")

    monkeypatch.setattr(vega3d.probe.run, "load_probe_scene", must_not_load)
    assert _probe(tmp_path, "synthetic", *argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_probe_cli_position_encoder_prints_one_table(tmp_path, capsys):
    argv = ["synthetic", "--encoder", "position", "--synthetic-size", "64x96", "--option", "min_motion_px=4"]
    assert _probe(tmp_path, *argv, "--option", "recall_stride_px=8") == 0
    text = capsys.readouterr().out
    assert text.count("AUROC, position-controlled") == 1 and "the position-only control itself" in text
    report = json.loads((tmp_path / "o" / "probe.json").read_text())
    assert report["position_control"] == report["result"]


def test_probe_cli_progress_in_a_log_is_plain_lines(tmp_path, capsys):
    argv = ["synthetic", "--encoder", "pixels", "--synthetic-size", "64x96", "--option", "min_motion_px=4"]
    assert _probe(tmp_path, *argv, "--option", "recall_stride_px=8") == 0
    err = capsys.readouterr().err  # not a terminal: no bar redrawn with carriage returns
    assert "\r" not in err and "probe: 4/4 stage" in err and "probe: scoring:" in err
