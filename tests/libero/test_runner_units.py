"""Harness logic without the simulator: config checks, resume bookkeeping, the JSONL log, work planning,
policies and the one-line errors before any episode starts."""

import argparse
import json

import numpy as np
import pytest

from vega3d.errors import Vega3DError
from vega3d.libero import env as libero_env
from vega3d.libero import runner
from vega3d.libero.cli import register
from vega3d.libero.policies import EpisodeInfo, RandomPolicy, ZeroPolicy, check_policy_spec, load_policy
from vega3d.libero.runner import EpisodeLog, make_config, pending_episodes, plan_units, read_episodes


def test_config_errors_are_one_line():
    with pytest.raises(Vega3DError, match="unknown LIBERO suite 'libero_99'") as err:
        make_config(suite="libero_99", policy="zero")
    assert "\n" not in str(err.value)
    with pytest.raises(Vega3DError, match="trials"):
        make_config(suite="libero_goal", policy="zero", trials=51)
    config = make_config(suite="libero_10", policy="zero")
    assert config.steps_limit() == 520 and config.seeds == [7] and config.is_standard()
    smoke = make_config(suite="libero_10", policy="zero", max_steps=20)
    assert not smoke.is_standard() and smoke.protocol()["max_steps"] == 20


def test_pending_episodes_skip_done_and_optionally_retry_errors():
    config = make_config(suite="libero_spatial", policy="zero", tasks=[0, 1], trials=3, seeds=[7, 8])
    records = [{"seed": 7, "task": 0, "episode": 0, "error": None}, {"seed": 7, "task": 0, "episode": 1, "error": "boom"},
               {"seed": 8, "task": 1, "episode": 2, "error": None}, {"seed": 9, "task": 1, "episode": 0, "error": None}]  # fmt: skip
    todo = pending_episodes(config, [0, 1], records)
    assert len(todo) == 12 - 3 and (7, 0, 1) not in todo and (7, 0, 2) in todo
    retry = pending_episodes(config.replace(retry_errors=True), [0, 1], records)
    assert (7, 0, 1) in retry and (7, 0, 0) not in retry


def test_plan_units_per_seed_and_task_then_split_for_idle_workers():
    todo = {(7, 0, e) for e in range(6)} | {(7, 3, e) for e in (1, 4)}
    units = plan_units([7], [0, 3], todo, workers=1)
    assert [(u.seed, u.task, u.episodes) for u in units] == [(7, 0, [0, 1, 2, 3, 4, 5]), (7, 3, [1, 4])]
    units = plan_units([7], [0, 3], todo, workers=4)
    assert len(units) == 4 and len({u.id for u in units}) == 4
    assert sorted(e for u in units if u.task == 0 for e in u.episodes) == list(range(6))
    assert all(u.episodes == sorted(u.episodes) for u in units)
    assert plan_units([7], [0], {(7, 0, 0)}, workers=8)[0].episodes == [0]


def test_episode_log_appends_and_cuts_a_torn_line(tmp_path):
    path = tmp_path / "episodes.jsonl"
    log = EpisodeLog(path)
    log.append({"seed": 7, "task": 0, "episode": 0, "success": True})
    log.close()
    with open(path, "a") as fh:  # a kill in the middle of a write
        fh.write('{"seed": 7, "task": 0, "epis')
    assert [r["episode"] for r in read_episodes(path)] == [0]
    log = EpisodeLog(path)
    log.append({"seed": 7, "task": 0, "episode": 1, "success": False})
    log.close()
    assert [r["episode"] for r in read_episodes(path)] == [0, 1]
    assert path.read_text().count("\n") == 2
    path.write_text('{"episode": 0}\nnot json\n')
    with pytest.raises(Vega3DError, match="episodes.jsonl:2: not a JSON episode record"):
        read_episodes(path)


def test_a_folder_of_another_protocol_is_refused(tmp_path):
    config = make_config(suite="libero_goal", policy="zero", max_steps=20)
    runner._open_run(tmp_path, config, "egl")
    runner._open_run(tmp_path, config.replace(workers=2, seeds=[7, 8]), "egl")  # same protocol: resumable
    with pytest.raises(Vega3DError, match="holds a run with protocol"):
        runner._open_run(tmp_path, config.replace(max_steps=30), "egl")
    saved = json.loads((tmp_path / "run.json").read_text())
    assert saved["protocol"]["max_steps"] == 20 and "mujoco" in saved["versions"]


def test_missing_libero_names_the_extra(monkeypatch):
    monkeypatch.setattr(libero_env.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(Vega3DError, match=r"LIBERO is not installed; install the extra: .*\[libero\]"):
        runner.check_run(make_config(suite="libero_goal", policy="zero"))


def test_missing_gl_backend_names_the_package(monkeypatch):
    monkeypatch.setattr(libero_env.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(Vega3DError, match="libOSMesa is not installed; apt-get install libosmesa6"):
        libero_env.resolve_gl("osmesa")
    with pytest.raises(Vega3DError, match="no headless GL backend"):
        libero_env.resolve_gl("auto")
    monkeypatch.setattr(libero_env.ctypes.util, "find_library", lambda name: "libEGL.so.1" if name == "EGL" else None)
    assert libero_env.resolve_gl("auto") == "egl"
    assert libero_env.gl_environment("egl") == {"MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"}


def test_policy_specs(tmp_path):
    assert check_policy_spec("random") == "builtin"
    assert check_policy_spec("tests.libero.test_runner_units:make_test_policy") == "factory"
    assert isinstance(load_policy("tests.libero.test_runner_units:make_test_policy"), ZeroPolicy)
    with pytest.raises(Vega3DError, match="config.json does not exist"):  # not an OpenVLA-OFT folder
        check_policy_spec(str(tmp_path))
    with pytest.raises(Vega3DError, match="no such checkpoint folder"):
        check_policy_spec(str(tmp_path / "missing"))
    with pytest.raises(Vega3DError, match="cannot import the factory"):
        check_policy_spec("no_such_module_xyz:make")
    with pytest.raises(Vega3DError, match="lacks"):
        load_policy("tests.libero.test_runner_units:make_bad_policy")


def make_test_policy():
    return ZeroPolicy(chunk=4)


def make_bad_policy():
    return object()


def test_smoke_policies():
    info = EpisodeInfo("libero_goal", 3, "name", "open the drawer", 5, 7)
    zero = ZeroPolicy()
    zero.reset(info)
    assert zero.act({}).shape == (8, 7) and not zero.act({}).any()
    a, b = RandomPolicy(), RandomPolicy()
    a.reset(info)
    b.reset(info)
    first = a.act({})
    np.testing.assert_array_equal(first, b.act({}))  # same episode -> same draws, in any process
    assert first.shape == (8, 7) and np.abs(first).max() <= 1 and set(np.unique(first[:, -1])) <= {-1.0, 1.0}
    b.reset(EpisodeInfo("libero_goal", 3, "name", "open the drawer", 6, 7))
    assert not np.array_equal(first, b.act({}))


def _parse(*argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["libero-eval", *argv])


def test_cli_arguments_and_bad_input_before_any_episode(tmp_path, monkeypatch):
    args = _parse("--policy", "zero", "--suite", "libero_goal", "--tasks", "0", "3", "--seeds", "7", "8", "9",
                  "--no-video", "--out", str(tmp_path))  # fmt: skip
    assert (args.tasks, args.seeds, args.video, args.trials, args.env_seed) == ([0, 3], [7, 8, 9], False, 50, "0")
    with pytest.raises(SystemExit):
        _parse("--policy", "zero", "--suite", "libero_100", "--out", str(tmp_path))
    with pytest.raises(Vega3DError, match="--env-seed 'x'"):
        args.func(_parse("--policy", "zero", "--suite", "libero_goal", "--env-seed", "x", "--out", str(tmp_path)))
    with pytest.raises(Vega3DError, match="unknown task id"):
        args.func(_parse("--policy", "zero", "--suite", "libero_goal", "--tasks", "12", "--out", str(tmp_path)))
    with pytest.raises(Vega3DError, match="config.json does not exist"):  # not an OpenVLA-OFT folder
        args.func(_parse("--policy", str(tmp_path), "--suite", "libero_goal", "--out", str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()  # nothing written before the checks pass


def test_unknown_gl_backend_is_one_line():
    with pytest.raises(Vega3DError, match="GL backend 'glx'; expected one of auto, egl, osmesa"):
        libero_env.resolve_gl("glx")
