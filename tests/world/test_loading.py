"""The saved model is a Wan2.1 folder in the diffusers layout: the simulator, ``vega3d probe --encoder
wan``, ``extract`` and ``demo --model`` load it unchanged, and its marker says it was trained here."""

import json

import pytest
import torch
from safetensors.torch import load_file

from vega3d import cli
from vega3d.standin import RANDOM_VAE_NOTE

TINY_PROBE = ["--option", "points_per_frame=64", "--option", "min_motion_px=8", "--option", "local_negative_px=[8,24]",
              "--option", "recall_stride_px=8"]  # fmt: skip  # configs/world_tiny.yaml's probe.options


def test_the_simulator_loads_the_trained_weights(tiny_run):
    from vega3d.simulator import WanWorldSimulator, open_wan_folder

    model = tiny_run / "model"
    assert open_wan_folder(model).layout == "diffusers"
    sim = WanWorldSimulator.from_pretrained(model, block=1, height=64, width=80)
    state = load_file(str(tiny_run / "checkpoints" / "step-0000030" / "state" / "model.safetensors"))
    loaded = sim.transformer.state_dict()
    assert {f"transformer.{k}" for k in loaded if not k.startswith("rope.")} == set(state)
    assert all(torch.equal(loaded[k[len("transformer.") :]], v) for k, v in state.items())  # the trainer's state
    assert sim.stand_in and "trained small model" in repr(sim) and "random weights" not in repr(sim)
    feats = sim.extract(torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(0)))
    assert feats.shape == (2, 4, 5, 32) and bool(torch.isfinite(feats).all())


def test_vega3d_probe_on_the_saved_model_equals_the_schedules_last_step(tiny_run, tmp_path, capsys):
    out = tmp_path / "probe"
    args = ["probe", "synthetic", "--encoder", "wan", "--model", str(tiny_run / "model"), "--block", "1",
            "--timestep", "300", "--height", "64", "--width", "80", "--frames", "4", "--synthetic-size", "96x128",
            "--out", str(out), "--no-figures", *TINY_PROBE]  # fmt: skip
    assert cli.main(args) == 0
    assert "trained small model" in capsys.readouterr().out
    result = json.loads((out / "probe.json").read_text())["result"]
    report = json.loads((tiny_run / "probe" / "probe.json").read_text())
    step = report["steps"][-1]
    assert step["step"] == 30
    row = next(r for r in step["rows"] if r["block"] == 1 and r["timestep"] == 300)
    assert row["scene"] == "heldout_room_0"  # the same room: synthetic_scene(4, 96, 128, seed 0, arc 100)
    assert result["auroc_local"] == pytest.approx(row["auroc_local"], abs=1e-6)
    assert result["nn_recall"] == pytest.approx(row["nn_recall"], abs=1e-6)


def test_extract_and_demo_load_it(tiny_run, tmp_path, capsys):
    from vega3d.media import write_frame_folder
    from vega3d.scenes import synthetic_scene
    from vega3d.store import FeatureStore

    model = str(tiny_run / "model")
    frames = synthetic_scene(3, 64, 80, seed=5).color.numpy()
    write_frame_folder(tmp_path / "room", frames)
    args = ["extract", str(tmp_path / "room"), "--model", model, "--out", str(tmp_path / "store"), "--height", "64",
            "--width", "80", "--block", "1", "--num-frames", "3", "--no-progress"]  # fmt: skip
    assert cli.main(args) == 0
    store = FeatureStore(tmp_path / "store")
    assert store.extraction_config["model"]["path"] == str((tiny_run / "model").resolve())
    features = store.get("room")[0]
    assert tuple(features.shape) == (3, 4, 5, 32) and bool(torch.isfinite(features.float()).all())

    args = ["demo", "--model", model, "--block", "1", "--height", "64", "--width", "80", "--frames", "4",
            "--no-trained-network", "--out", str(tmp_path / "demo")]  # fmt: skip
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    # the tiny config trains on a random VAE: the label and the notice say so
    assert "[STAND-IN, trained small model, random VAE]" in printed and "[STAND-IN, random weights]" not in printed
    assert "trained by vega3d" in printed and "STAND-IN with random weights" not in printed  # the notice
    assert RANDOM_VAE_NOTE in printed
    assert json.loads((tmp_path / "demo" / "report.json").read_text())["encoder"]["block"] == 1


def test_the_marker_tells_a_trained_model_from_a_random_one(tiny_run, tmp_path):
    from vega3d.standin import MARKER, is_stand_in, is_trained_stand_in, stand_in_label
    from vega3d.standin.wan import save_tiny_wan

    random = save_tiny_wan(tmp_path / "random", num_layers=2)
    trained = tiny_run / "model"
    assert is_stand_in(random) and is_stand_in(trained)
    assert not is_trained_stand_in(random) and is_trained_stand_in(trained)
    text = (trained / MARKER).read_text()
    assert "A small model trained by vega3d." in text and "A small model with **random weights**" not in text
    assert RANDOM_VAE_NOTE in text  # the tiny config's DiT trained on a random VAE
    assert (stand_in_label(trained), stand_in_label(random)) == ("trained small model, random VAE", "random weights")
    assert "NOT Wan2.1-T2V" in text and '"num_layers": 2' in text  # what it is not, and its recipe
    assert not is_trained_stand_in(tmp_path)  # no marker at all
