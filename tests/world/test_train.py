"""``vega3d train-world`` end to end on the tiny configs: the loss falls, the probe schedule writes its
JSON and PNG, a run killed with SIGKILL resumes bit-identically, the two stages (VAE, then DiT)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from tests.world.conftest import REPO, TINY, TINY_VAE, read_log, train_tiny
from vega3d.errors import Vega3DError
from vega3d.simulator import flow_noise_level
from vega3d.training.config import load_train_config


def test_tiny_config_trains_and_the_loss_falls(tiny_run):
    log = read_log(tiny_run)
    assert [r["step"] for r in log] == list(range(1, 31))
    losses = torch.tensor([r["loss"] for r in log])
    assert bool(torch.isfinite(losses).all())
    assert float(losses[-10:].mean()) < 0.95 * float(losses[:10].mean()), losses
    # the zero-initialised output projection (Wan's init) predicts 0 at step 1: loss = E[(eps - z)^2] ~ 2
    assert 1.5 < float(losses[0]) < 2.5
    assert (tiny_run / "model" / "transformer" / "diffusion_pytorch_model.safetensors").is_file()


def test_probe_schedule_writes_its_json_and_png(tiny_run):
    probe = tiny_run / "probe"
    assert sorted(p.name for p in probe.glob("step-*.json")) == [f"step-{s:07d}.json" for s in (10, 20, 30)]
    png = (probe / "probe.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    report = json.loads((probe / "probe.json").read_text())
    assert report["headline"] == {"block": 1, "timestep": 300.0}
    assert report["random_init_seeds"] == [0, 1, 2]
    assert [s["step"] for s in report["steps"]] == [0, 10, 20, 30]
    curves = report["curves"]["synthetic"]
    assert [(c["block"], c["timestep"]) for c in curves] == [(1, 300.0), (1, 600.0), (0, 300.0), (0, 600.0)]
    for c in curves:
        assert c["steps"] == [0, 10, 20, 30] and len(c["auroc_local"]) == 4
        assert c["auroc_local"][0] == c["random_init"]["auroc_local"][0]  # step 0 is this run's own init (seed 0)
        assert all(0.0 <= v <= 1.0 for v in c["auroc_local"] + c["nn_recall"])
    # every probed row is one (scene, block, timestep) score on Wan's grid
    rows = report["steps"][-1]["rows"]
    grid = {ts: flow_noise_level(ts, 5.0) for ts in (300, 600)}  # the simulator's map (300 -> t 299)
    assert {(r["block"], r["t"], r["sigma"]) for r in rows} == {(b, *grid[ts]) for b in (0, 1) for ts in grid}
    verdict = report["verdict"]["headline"]["synthetic"]
    spread = max(verdict["random_init"]) - min(verdict["random_init"])
    assert verdict["seed_spread"] == pytest.approx(spread)
    assert verdict["positive"] == (verdict["gain"] > spread and verdict["auroc_local"] > max(verdict["random_init"]))


def test_sigkill_mid_run_then_resume_is_bit_identical(tiny_run, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "vega3d.cli", "train-world", str(TINY), f"train.output_dir={out}", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    done = out / "checkpoints" / "step-0000010" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not done.is_file():
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "model").exists()
    assert train_tiny(out) == 0  # the same command again: resumes from step 10
    a = load_file(str(tiny_run / "model" / "transformer" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(out / "model" / "transformer" / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in read_log(out)] == [r["loss"] for r in read_log(tiny_run)]
    steps = lambda run: json.loads((run / "probe" / "probe.json").read_text())["steps"]  # noqa: E731
    assert steps(out) == steps(tiny_run)


def test_vae_stage_then_the_dit_on_its_latents(tmp_path):
    from vega3d.world.model import RECORD_FILE, latent_statistics, load_vae

    vae_out = tmp_path / "vae"
    assert train_tiny(vae_out, config=TINY_VAE) == 0
    losses = [r["loss"] for r in read_log(vae_out)]
    assert losses[-1] < 0.8 * losses[0], losses
    record = json.loads((vae_out / "model" / RECORD_FILE).read_text())
    assert record["family"] == "world_vae" and record["psnr_db"] > 10
    vae = load_vae(vae_out / "model")
    # the saved latent statistics: per-channel mean/std of the stock 3-D encoder's posterior modes
    from vega3d.world.data import statistics_frames

    cfg = load_train_config(TINY_VAE, [f"train.output_dir={vae_out}"])
    frames = statistics_frames(cfg.data, cfg.data.stats_frames)
    with torch.no_grad():
        modes = vae.encode(frames[:, :, None] * 2 - 1).latent_dist.mode()[:, :, 0]
    ref = modes.transpose(0, 1).reshape(16, -1).double()
    assert torch.allclose(torch.tensor(vae.config.latents_mean), ref.mean(1).float(), atol=1e-4)
    assert torch.allclose(torch.tensor(vae.config.latents_std), ref.std(1).float(), atol=1e-4)
    assert latent_statistics(vae, frames)[0] == pytest.approx(vae.config.latents_mean, abs=1e-5)

    dit_out = tmp_path / "dit"
    assert train_tiny(dit_out, f"model.vae={vae_out / 'model'}", "train.max_steps=2", "probe.every=0") == 0
    a = load_file(str(vae_out / "model" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(dit_out / "model" / "vae" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # the VAE is frozen under the DiT
    assert json.loads((dit_out / "model" / RECORD_FILE).read_text())["vae"]["source"] == str(vae_out / "model")
    from vega3d.standin import stand_in_label

    assert stand_in_label(dit_out / "model") == "trained small model"  # a trained VAE: no random-VAE note


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["probe.blocks=[2]"], "probe.blocks: \\[2\\] outside the DiT's blocks 0..1"),
        (["probe.timesteps=[1200]"], "probe.timesteps: timestep"),
        (["probe.options={min_motion_px: -1}"], "probe.options: probe option min_motion_px"),
        (["probe.options={seed: 3}"], "probe.options: seed is probe.seed"),
        (["data.crop=32"], "data.crop: the DiT trains on whole frames"),
        (["data.height=72"], "data.height: value error, a multiple of 16"),
        (["model.num_heads=3"], "model.num_heads: value error, a divisor of dim=32"),
        (["data.source=media"], "data.media_root: required with data.source: media"),
        (["model.vae=nowhere"], "model.vae: .*nowhere does not exist, expected a folder"),
        (["simulator={path: x}"], "simulator: the world family trains its own model"),
        (["simulator={block: 3}"], "simulator: the world family trains its own model"),
    ],
)
def test_bad_configs_are_one_line_errors_before_any_work(overrides, message, tmp_path):
    with pytest.raises(Vega3DError, match=message) as err:
        load_train_config(TINY, [f"train.output_dir={tmp_path}", *overrides])
    assert "\n" not in str(err.value)


def test_train_world_refuses_other_families(tmp_path, capsys):
    from vega3d.cli import main

    assert main(["train-world", str(REPO / "configs" / "tiny.yaml"), f"train.output_dir={tmp_path}"]) == 2
    assert "not a world-model family" in capsys.readouterr().err


def test_probe_schedule_scores_the_real_scan(tmp_path, tum_sample):
    """probe.scan: the real TUM sample is probed at every scheduled step beside the held-out rooms."""
    out = tmp_path / "run"
    overrides = ["train.max_steps=2", "train.save_every=0", "probe.every=2", f"probe.scan={tum_sample}",
                 "probe.scan_frames=3", "probe.blocks=[1]", "probe.timesteps=[300]"]  # fmt: skip
    assert train_tiny(out, *overrides) == 0
    report = json.loads((out / "probe" / "probe.json").read_text())
    assert report["sets"]["scan"] == ["tum_fr1_xyz_10"]
    (curve,) = report["curves"]["scan"]
    assert curve["steps"] == [0, 2] and all(0.0 <= v <= 1.0 for v in curve["auroc_local"] + curve["nn_recall"])
    rows = [r for r in report["steps"][-1]["rows"] if r["set"] == "scan"]
    assert [(r["scene"], r["block"], r["timestep"]) for r in rows] == [("tum_fr1_xyz_10", 1, 300)]
    assert set(report["inputs"]["scan"]) == {"pixels", "vae_latents"}
