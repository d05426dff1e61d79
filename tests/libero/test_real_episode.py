"""Real LIBERO episodes (libero_spatial task 0, 10 settle + 10 policy steps, 128-px cameras, fresh worker
processes): zero and random policies, MP4 + JSONL + LeRobot recording, and a killed evaluation resumed.

Needs the ``libero`` extra and a headless GL library; skipped with the reason otherwise."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from tests.libero.real_env import REAL_LIBERO

pytestmark = REAL_LIBERO

SMOKE = dict(suite="libero_spatial", tasks=[0], max_steps=10, camera_size=128)


def _kill_after_first_episode(process, log) -> None:
    """SIGKILL the CLI's process group as soon as its first episode line is complete in ``log``."""
    while process.poll() is None and not (log.exists() and log.read_bytes().endswith(b"\n")):
        time.sleep(0.05)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_real_episodes_zero_and_random_policies_kill_and_resume(tmp_path):
    """The random-policy evaluation runs as a CLI process (killed after its first episode, then resumed)
    while the zero-policy evaluation runs beside it: three fresh worker processes, two at a time."""
    from vega3d.libero.dataset import LeRobotDataset
    from vega3d.libero.runner import evaluate, make_config, read_episodes
    from vega3d.media import count_frames, read_frames

    out = tmp_path / "random"
    command = [sys.executable, "-m", "vega3d.libero.cli", "libero-eval", "--policy", "random", "--suite", "libero_spatial",
               "--tasks", "0", "--trials", "2", "--max-steps", "10", "--camera-size", "128", "--out", str(out)]  # fmt: skip
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = out / "episodes.jsonl"
    killer = threading.Thread(target=_kill_after_first_episode, args=(process, log), daemon=True)
    killer.start()  # watches the log while the zero-policy evaluation runs beside it
    try:
        # zero policy, meanwhile: one episode, video, JSONL, results and a LeRobot recording
        config = make_config(policy="zero", trials=1, record=str(tmp_path / "dataset"), **SMOKE)
        results = evaluate(config, tmp_path / "zero", show_progress=False)
        (rec,) = read_episodes(tmp_path / "zero" / "episodes.jsonl")
        assert rec["error"] is None and rec["steps"] == 10 and rec["queries"] == 2 and rec["success"] is False
        assert (rec["seed"], rec["task"], rec["episode"], rec["dataset_episode"]) == (7, 0, 0, 0)
        video = tmp_path / "zero" / rec["video"]
        assert count_frames(video) == 10 and read_frames(video, [0]).shape == (1, 128, 256, 3)  # agentview | wrist
        assert results["complete"] and results["suite_total"]["pooled"]["episodes"] == 1
        assert (tmp_path / "zero" / "results.txt").read_text().startswith("task")
        episode = LeRobotDataset(tmp_path / "dataset", action_dim=7).episode(0)
        assert len(episode) == 10 and episode.task.startswith("pick up the black bowl")
        assert not episode.action.any()  # zero actions: the arm holds still
        assert np.abs(episode.state[:, :3] - episode.state[0, :3]).max() < 0.01
        assert episode.images["observation.images.image"].shape == (10, 128, 128, 3)
        killer.join(timeout=300)
        assert not killer.is_alive(), "no random-policy episode finished in 300 s"
        assert process.returncode == -signal.SIGKILL, process.stdout.read().decode()[-2000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    first = read_episodes(log)
    assert [r["episode"] for r in first] == [0] and first[0]["error"] is None

    results = evaluate(make_config(policy="random", trials=2, **SMOKE), out, show_progress=False)  # the resume
    records = read_episodes(log)
    assert [r["episode"] for r in records] == [0, 1]
    assert records[0] == first[0]  # not rerun
    assert all(r["error"] is None and r["steps"] == 10 and (out / r["video"]).exists() for r in records)
    assert results["complete"] and results["per_task"][0]["per_seed"]["7"]["episodes"] == 2
