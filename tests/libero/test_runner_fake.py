"""The harness's process and bookkeeping logic on a fake simulator (tests/libero/fake_sim.py): spawned workers,
OpenVLA-OFT's random-generator chain across resets (also when units are split and resumed), errors and
worker deaths recorded as failed episodes, retries, recording."""

import json

import numpy as np
import pytest

from vega3d.libero.runner import evaluate, make_config, plan_units, read_episodes

FAKE = "tests.libero.fake_sim"
POLICY = "tests.libero.fake_sim:logging_policy"


def chain(n: int, seed: int = 0) -> list[float]:
    """Fixture offsets of OFT's loop: env.seed(seed) once, then one reset (one draw) per episode."""
    rng = np.random.RandomState(seed)
    return [float(rng.random_sample()) for _ in range(n)]


def _seen(path) -> dict:
    return {(e["seed"], e["task"], e["episode"]): e["fixture"] for e in map(json.loads, path.read_text().splitlines())}


def _run(tmp_path, name="run", **values):
    config = make_config(suite="libero_goal", policy=POLICY, max_steps=6, camera_size=32, **values)
    return evaluate(config, tmp_path / name, show_progress=False, simulator=FAKE)


def test_chain_is_kept_across_workers_split_units_and_resume(tmp_path, monkeypatch):
    log = tmp_path / "seen.jsonl"
    monkeypatch.setenv("FAKE_SIM_LOG", str(log))
    res = _run(tmp_path, tasks=[0, 1], trials=5, seeds=[7, 8], workers=2)
    expected = chain(5)
    seen = _seen(log)
    assert len(seen) == 20 and all(seen[k] == pytest.approx(expected[k[2]]) for k in seen)
    assert res["complete"] and res["suite_total"]["pooled"]["successes"] == 12  # episodes 0, 2, 4 succeed
    records = read_episodes(tmp_path / "run" / "episodes.jsonl")
    assert all(r["steps"] == (3 if r["episode"] % 2 == 0 else 6) and r["error"] is None for r in records)

    # one unit split over 3 workers: the later halves fast-forward the resets they do not run
    log.unlink()
    _run(tmp_path, name="split", tasks=[4], trials=6, workers=3)
    seen = _seen(log)
    assert sorted(k[2] for k in seen) == list(range(6))
    # three units (which worker process takes which is up to timing: a fast one may take two)
    units = plan_units([7], [4], {(7, 4, e) for e in range(6)}, 3)
    assert sorted(u.episodes for u in units) == [[0], [1, 2], [3, 4, 5]]
    assert all(seen[k] == pytest.approx(chain(6)[k[2]]) for k in seen)

    # a run that lost its last two lines (killed): the resume runs only those, with the same generator states
    path = tmp_path / "split" / "episodes.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    kept = sorted(lines, key=lambda line: json.loads(line)["episode"])[:4]
    path.write_text("".join(kept))
    log.unlink()
    _run(tmp_path, name="split", tasks=[4], trials=6, workers=1)
    assert sorted(k[2] for k in _seen(log)) == [4, 5]
    assert all(v == pytest.approx(chain(6)[k[2]]) for k, v in _seen(log).items())
    assert sorted(r["episode"] for r in read_episodes(path)) == list(range(6))


def test_env_seed_from_the_run_seed(tmp_path, monkeypatch):
    log = tmp_path / "seen.jsonl"
    monkeypatch.setenv("FAKE_SIM_LOG", str(log))
    _run(tmp_path, tasks=[0], trials=2, seeds=[7, 8], env_seed=None)
    seen = _seen(log)
    assert [seen[(7, 0, e)] for e in range(2)] == pytest.approx(chain(2, 7))
    assert [seen[(8, 0, e)] for e in range(2)] == pytest.approx(chain(2, 8))


def test_errors_and_worker_deaths_are_failed_episodes_and_can_be_retried(tmp_path, monkeypatch):
    log = tmp_path / "seen.jsonl"
    monkeypatch.setenv("FAKE_SIM_LOG", str(log))
    monkeypatch.setenv("FAKE_SIM_CRASH", "raise:2")
    res = _run(tmp_path, tasks=[0], trials=4)
    records = {r["episode"]: r for r in read_episodes(tmp_path / "run" / "episodes.jsonl")}
    assert records[2]["error"].startswith("RuntimeError: policy failure in episode 2 (fake_sim.py:")
    assert records[2]["success"] is False and records[0]["success"] and records[3]["error"] is None
    assert res["per_task"][0]["pooled"]["errors"] == 1 and "errors" in res["table"]

    monkeypatch.setenv("FAKE_SIM_CRASH", "die:1")  # the worker process exits in episode 1
    _run(tmp_path, name="die", tasks=[0], trials=4)
    records = {r["episode"]: r for r in read_episodes(tmp_path / "die" / "episodes.jsonl")}
    assert sorted(records) == [0, 1, 2, 3]
    assert records[1]["error"] == "worker process died (exit code 3) during the episode" and not records[1]["success"]
    assert records[2]["success"] and records[3]["error"] is None  # a new worker went on, generator chain intact
    seen = _seen(log)
    assert seen[(7, 0, 2)] == pytest.approx(chain(4)[2]) and seen[(7, 0, 3)] == pytest.approx(chain(4)[3])

    monkeypatch.delenv("FAKE_SIM_CRASH")
    res = _run(tmp_path, name="die", tasks=[0], trials=4, retry_errors=True)
    records = read_episodes(tmp_path / "die" / "episodes.jsonl")
    assert len(records) == 5 and records[-1]["episode"] == 1 and records[-1]["error"] is None
    assert res["per_task"][0]["pooled"]["errors"] == 0 and res["per_task"][0]["pooled"]["episodes"] == 4


def test_recorded_dataset_and_videos(tmp_path):
    from vega3d.libero.dataset import LeRobotDataset
    from vega3d.media import count_frames

    _run(tmp_path, tasks=[0, 1], trials=2, workers=2, record=str(tmp_path / "ds"))
    records = read_episodes(tmp_path / "run" / "episodes.jsonl")
    assert sorted(r["dataset_episode"] for r in records) == [0, 1, 2, 3]
    ds = LeRobotDataset(tmp_path / "ds", action_dim=7)
    assert len(ds) == 4 and set(ds.tasks.values()) == {"do fake thing 0", "do fake thing 1"}
    for r in records:
        ep = ds.episode(r["dataset_episode"])
        assert len(ep) == r["steps"] and ep.task == f"do fake thing {r['task']}"
        assert ep.images["observation.images.image"].shape == (r["steps"], 32, 32, 3)
        np.testing.assert_allclose(ep.state[:, 1], r["episode"])  # proprio[1] = initial state index
        assert count_frames(tmp_path / "run" / r["video"]) == r["steps"]
