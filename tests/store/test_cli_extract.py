"""``vega3d extract`` end to end with the tiny random-weight Wan stand-in: contents, resume,
config mismatch, two torchrun ranks == one, and an external kill -9 mid-run then resume."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.store.inputs_fixture import build_inputs, write_frame_folder
from tests.store.test_crash_resume import snapshot
from vega3d import cli
from vega3d.simulator import WanWorldSimulator
from vega3d.standin.wan import save_tiny_wan
from vega3d.store import FeatureStore
from vega3d.store.inputs import discover_inputs, load_frames

SIM = dict(height=32, width=48, block=1)
ARGS = ["--height", "32", "--width", "48", "--block", "1", "--num-frames", "3", "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs, a tiny Wan folder, and a store written by one process with the CLI."""
    root = tmp_path_factory.mktemp("store_cli")
    inputs = build_inputs(root)
    wan = save_tiny_wan(root / "wan", num_layers=2)
    rc = cli.main(["extract", str(inputs), "--model", str(wan), "--out", str(root / "one"), *ARGS])
    return {"root": root, "inputs": inputs, "wan": wan, "one": root / "one", "rc": rc}


def test_store_holds_the_simulator_features(world, capsys):
    assert world["rc"] == 1  # two bad inputs failed; the others are stored
    sim = WanWorldSimulator.from_pretrained(world["wan"], **SIM)
    store = FeatureStore(world["one"], expected_config=sim)
    assert store.ids() == ["clip", "scan_a", "scan_b", "shots"]
    for item in discover_inputs([world["inputs"]]):
        if item.item_id not in store:
            continue
        loaded = load_frames(item, num_frames=3)
        got, idx = store.get(item.item_id)
        assert idx == loaded.frame_indices and got.dtype == torch.bfloat16
        assert torch.equal(got, sim.extract(loaded.frames).to(torch.bfloat16))
    assert store.config["extraction"] == sim.config.to_dict()
    assert store.config["storage"] == {"precision": "bf16", "pool": None}

    # rerun: everything finished is skipped; the failures are tried and reported again
    rc = cli.main(["extract", str(world["inputs"]), "--model", str(world["wan"]), "--out", str(world["one"]), *ARGS])
    out = capsys.readouterr().out
    assert rc == 1 and "0 done, 4 skipped" in out and "FAILED broken" in out and "FAILED scan_nodepth" in out


def test_other_config_is_refused(world, capsys):
    sim0 = WanWorldSimulator.from_pretrained(world["wan"], **{**SIM, "block": 0})
    with pytest.raises(Exception, match=r"block: store has 1, expected 0"):
        FeatureStore(world["one"], expected_config=sim0)
    rc = cli.main(
        [
            "extract",
            str(world["inputs"]),
            "--model",
            str(world["wan"]),
            "--out",
            str(world["one"]),
            *ARGS,
            "--seed",
            "7",
        ]
    )
    assert rc == 2 and "seed: store has 0, expected 7" in capsys.readouterr().err


def test_a_run_where_every_item_fails_writes_no_store(world, tmp_path, capsys):
    out = tmp_path / "none"
    rc = cli.main(
        ["extract", str(world["inputs"] / "broken.mp4"), "--model", str(world["wan"]), "--out", str(out), *ARGS]
    )
    printed = capsys.readouterr()
    assert rc == 1 and not out.exists()
    assert "(not written: no item succeeded)" in printed.out and "FAILED broken" in printed.out
    assert "NOTE: small STAND-IN(s), not the real model: the Wan simulator" in printed.err


def test_store_info_verifies_checksums(world, tmp_path, capsys):
    assert cli.main(["store-info", str(world["one"]), "--verify"]) == 0
    assert "items: 4" in capsys.readouterr().out
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(world["one"], copy)
    shard = next((copy / "shards").glob("scan_b-*.safetensors"))
    data = bytearray(shard.read_bytes())
    data[-1] ^= 1
    shard.write_bytes(bytes(data))
    assert cli.main(["store-info", str(copy), "--verify"]) == 1
    assert f"{shard.name} of item 'scan_b' is corrupted" in capsys.readouterr().out


def test_store_info_says_when_the_features_come_from_a_stand_in(world, tmp_path, capsys):
    import shutil

    assert cli.main(["store-info", str(world["one"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  STAND-IN: extracted with a small random-weight stand-in model, not Wan2.1")
    # the same weights without the stand-in marker (as a real Wan2.1 folder has none): no banner
    from vega3d.standin import MARKER as STAND_IN_MARKER

    wan = tmp_path / "wan"
    shutil.copytree(world["wan"], wan)
    (wan / STAND_IN_MARKER).unlink()
    rc = cli.main(
        ["extract", str(world["inputs"] / "clip.mp4"), "--model", str(wan), "--out", str(tmp_path / "s"), *ARGS]
    )
    assert rc == 0
    capsys.readouterr()
    assert cli.main(["store-info", str(tmp_path / "s")]) == 0
    assert "STAND-IN" not in capsys.readouterr().out


def test_two_torchrun_ranks_write_the_same_store_as_one(world):
    out = world["root"] / "two"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "vega3d.cli",
        "extract",
        str(world["inputs"]),
        "--model",
        str(world["wan"]),
        "--out",
        str(out),
        *ARGS,
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    assert "4 done, 0 skipped" in res.stdout, res.stdout + res.stderr
    assert res.stdout.count("vega3d extract ->") == 1  # one summary, from rank 0
    assert snapshot(out) == snapshot(world["one"])
    import json

    run = json.loads((out / "last_run.json").read_text())
    assert run["done"] == ["clip", "scan_a", "scan_b", "shots"]  # each item once: no duplicate work


def test_kill_9_mid_run_then_resume_equals_uninterrupted(world, tmp_path):
    inputs = tmp_path / "many"
    for k in range(10):
        write_frame_folder(inputs / f"set{k:02d}", names=tuple(f"{k}_{j}.png" for j in range(1, 4)))
    args = ["--height", "64", "--width", "96", "--block", "1", "--num-frames", "3", "--no-progress"]  # ~4x the work
    cmd = [
        sys.executable,
        "-m",
        "vega3d.cli",
        "extract",
        str(inputs),
        "--model",
        str(world["wan"]),
        "--out",
        str(tmp_path / "killed"),
        *args,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    records = tmp_path / "killed" / "records"
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and not (records.is_dir() and any(records.iterdir())):
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    committed = len(list(records.glob("*.json")))
    assert 1 <= committed < 10
    assert (
        cli.main(["extract", str(inputs), "--model", str(world["wan"]), "--out", str(tmp_path / "killed"), *args]) == 0
    )
    assert (
        cli.main(["extract", str(inputs), "--model", str(world["wan"]), "--out", str(tmp_path / "clean"), *args]) == 0
    )
    assert snapshot(tmp_path / "killed") == snapshot(tmp_path / "clean")
    assert len(FeatureStore(tmp_path / "killed")) == 10


def test_pool_precision_explicit_frames_and_prompt_embedding_flags(world, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    from vega3d.grids import resample_grid

    out = tmp_path / "pooled"
    args = [
        "extract",
        str(world["inputs"] / "clip.mp4"),
        str(world["inputs"] / "shots"),
        "--model",
        str(world["wan"]),
        "--out",
        str(out),
        "--height",
        "32",
        "--width",
        "48",
        "--block",
        "1",
        "--no-progress",
    ]
    assert cli.main([*args, "--frames", "2,0", "--pool", "1", "2", "--precision", "fp32"]) == 0
    sim = WanWorldSimulator.from_pretrained(world["wan"], **SIM)
    store = FeatureStore(out, expected_config=sim)
    assert store.config["storage"] == {"precision": "fp32", "pool": [1, 2]}
    for item in discover_inputs([world["inputs"] / "clip.mp4", world["inputs"] / "shots"]):
        got, idx = store.get(item.item_id)
        assert idx == [2, 0] and got.dtype == torch.float32 and got.shape[:3] == (2, 1, 2)
        assert torch.equal(got, resample_grid(sim.extract(load_frames(item, frames=[2, 0]).frames), (1, 2)))
    assert "per item" in capsys.readouterr().out

    # --prompt-embedding reaches the simulator: another embedding is another config
    prompt = load_file(world["wan"] / "prompt_embedding.safetensors")
    save_file({"prompt_embedding": prompt["prompt_embedding"] * 2}, tmp_path / "other_prompt.safetensors")
    rc = cli.main(
        [
            *args,
            "--frames",
            "2,0",
            "--pool",
            "1",
            "2",
            "--precision",
            "fp32",
            "--prompt-embedding",
            str(tmp_path / "other_prompt.safetensors"),
        ]
    )
    assert rc == 2 and "prompt.sha256: store has" in capsys.readouterr().err


def test_online_cache_gives_the_stored_numbers(world):
    from vega3d.store import OnlineFeatureCache

    sim = WanWorldSimulator.from_pretrained(world["wan"], **SIM)
    store = FeatureStore(world["one"])
    cache = OnlineFeatureCache(sim, max_bytes=2**20, precision="bf16")
    item = discover_inputs([world["inputs"] / "scan_a"])[0]
    loaded = load_frames(item, num_frames=3)
    online = cache.get("scan_a", loaded.frame_indices, loaded.frames)
    assert torch.equal(online, store.get("scan_a")[0])


def test_real_tum_scan_folder(world, tmp_path, capsys, tum_sample):
    rc = cli.main(
        [
            "extract",
            str(tum_sample),
            "--model",
            str(world["wan"]),
            "--out",
            str(tmp_path / "tum"),
            "--height",
            "32",
            "--width",
            "48",
            "--block",
            "1",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "asked for 32 frames, the input has 10: using all 10 once" in out
    store = FeatureStore(tmp_path / "tum")
    feats, frames = store.get(tum_sample.name)
    assert frames == list(range(10)) and feats.shape == (10, 2, 3, 32)


def test_clip_mode(world, tmp_path, capsys):
    out = tmp_path / "clip"
    args = [
        "extract",
        str(world["inputs"] / "clip.mp4"),
        "--model",
        str(world["wan"]),
        "--out",
        str(out),
        "--height",
        "32",
        "--width",
        "48",
        "--block",
        "1",
        "--no-progress",
        "--clip",
    ]
    assert cli.main([*args, "--num-frames", "5"]) == 0
    sim = WanWorldSimulator.from_pretrained(world["wan"], **SIM)
    store = FeatureStore(out, expected_config=sim.clip_config)
    assert store.extraction_config["mode"] == "clip"
    item = discover_inputs([world["inputs"] / "clip.mp4"])[0]
    loaded = load_frames(item, num_frames=5)  # frames [0, 1, 3, 4, 6] of 7
    got, labels = store.get("clip")
    assert labels == [0, 6]  # latent 0 = frame 0; latent 1 = frames 1, 3, 4, 6 -> labelled by the last
    assert store.entries("clip")[0]["clip_frames"] == loaded.frame_indices == [0, 1, 3, 4, 6]
    assert torch.equal(got, sim.extract_clip(loaded.frames).features.to(torch.bfloat16))
    with pytest.raises(Exception, match="mode: store has 'clip', expected 'frame'"):
        FeatureStore(out, expected_config=sim)
    assert cli.main([*args, "--num-frames", "4"]) == 2
    assert "1 + 4k frames" in capsys.readouterr().err


def test_vae_dtype_flag_reaches_the_simulator_and_the_store(world, tmp_path, capsys):
    assert FeatureStore(world["one"]).extraction_config["vae_dtype"] == "float32"  # the default
    out = tmp_path / "vae_bf16"
    args = [
        "extract",
        str(world["inputs"] / "shots"),
        "--model",
        str(world["wan"]),
        "--out",
        str(out),
        "--height",
        "32",
        "--width",
        "48",
        "--block",
        "1",
        "--num-frames",
        "3",
        "--no-progress",
    ]
    assert cli.main([*args, "--vae-dtype", "bfloat16"]) == 0
    sim = WanWorldSimulator.from_pretrained(world["wan"], **SIM, vae_dtype="bfloat16")
    store = FeatureStore(out, expected_config=sim)
    assert store.extraction_config["vae_dtype"] == "bfloat16" and store.extraction_config["dtype"] == "float32"
    item = discover_inputs([world["inputs"] / "shots"])[0]
    assert torch.equal(store.get("shots")[0], sim.extract(load_frames(item, num_frames=3).frames).to(torch.bfloat16))
    rc = cli.main([*args, "--vae-dtype", "float16"])  # resuming with another VAE dtype is another config
    assert rc == 2 and "vae_dtype: store has 'bfloat16', expected 'float16'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([*args, "--vae-dtype", "float64"])
    assert "invalid choice: 'float64'" in capsys.readouterr().err
