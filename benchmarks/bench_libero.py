"""LIBERO harness: control steps/s with 1 vs N simulator processes, and what rendering costs.

For each worker count N in ``--workers``, N spawned processes (as the harness's workers: GL
environment set before mujoco is imported) each build a ``libero_spatial`` task env (task = worker
index), ``env.seed(0)``, ``reset``, ``set_init_state(0)`` and the 10 settle steps; then, behind a
barrier, all step ``--steps`` control steps at once with uniform random actions. Reported:

- per-process steps/s and the aggregate (N x steps / slowest process), the ratio to N = 1;
- the same with rendering off (``has_offscreen_renderer=False``, no camera observations): the
  render cost share = 1 - (time without cameras / time with cameras), per step;
- one-off costs per process: import, env build, ``reset`` (a hard reset rebuilds the model, as
  every episode of the protocol does), ``set_init_state``.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_libero.py [--workers 1 2] [--steps 60] [--camera-size 256]
        [--lp-threads N] [--json results.json]

Software rendering (Mesa llvmpipe through EGL) on a CPU-only machine; ``--lp-threads`` sets
``LP_NUM_THREADS`` (llvmpipe's render threads per process; default: one per core) in the workers.
Numbers depend on what else the machine runs; the docs quote them with the load average.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time


def _worker(task: int, settings: dict, barrier, results) -> None:
    if settings["lp_threads"]:
        os.environ["LP_NUM_THREADS"] = str(settings["lp_threads"])
    t0 = time.perf_counter()
    import numpy as np

    from vega3d.libero.env import import_simulator, init_states, make_env, step

    env_class = import_simulator(settings["gl"])
    t_import = time.perf_counter() - t0
    states = init_states("libero_spatial", task)
    t = time.perf_counter()
    if settings["render"]:
        env = make_env(env_class, "libero_spatial", task, settings["camera_size"])
    else:
        from libero.libero.envs.env_wrapper import ControlEnv

        from vega3d.libero.env import bddl_path

        env = ControlEnv(bddl_file_name=str(bddl_path("libero_spatial", task)), has_offscreen_renderer=False,
                         use_camera_obs=False)  # fmt: skip
    t_build = time.perf_counter() - t
    env.seed(0)
    t = time.perf_counter()
    env.reset()
    t_reset = time.perf_counter() - t
    t = time.perf_counter()
    env.set_init_state(states[0])
    t_init = time.perf_counter() - t
    for _ in range(10):
        step(env, (0, 0, 0, 0, 0, 0, -1))
    rng = np.random.default_rng(task)
    actions = np.concatenate(
        [rng.uniform(-0.5, 0.5, (settings["steps"], 6)), rng.choice([-1.0, 1.0], (settings["steps"], 1))], 1
    )
    barrier.wait()
    t = time.perf_counter()
    for a in actions:
        step(env, a)
    t_steps = time.perf_counter() - t
    env.close()
    results.put({"task": task, "import_s": t_import, "build_s": t_build, "reset_s": t_reset, "set_init_s": t_init,
                 "steps_s": t_steps})  # fmt: skip


def measure(n: int, settings: dict) -> dict:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(i, settings, barrier, results)) for i in range(n)]
    for p in procs:
        p.start()
    rows = [results.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    slowest = max(r["steps_s"] for r in rows)
    return {
        "workers": n,
        "render": settings["render"],
        "steps_per_s_per_process": statistics.fmean(settings["steps"] / r["steps_s"] for r in rows),
        "aggregate_steps_per_s": n * settings["steps"] / slowest,
        "ms_per_step": 1000 * statistics.fmean(r["steps_s"] for r in rows) / settings["steps"],
        **{k: statistics.fmean(r[k] for r in rows) for k in ("import_s", "build_s", "reset_s", "set_init_s")},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=60, help="timed control steps per process")
    p.add_argument("--camera-size", type=int, default=256)
    p.add_argument("--gl", default="auto", choices=("auto", "egl", "osmesa"))
    p.add_argument("--lp-threads", type=int, default=0, help="LP_NUM_THREADS in the workers (0: Mesa's default)")
    p.add_argument("--no-render-baseline", action="store_true", help="skip the runs without cameras")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)

    from vega3d.libero.env import require_libero, resolve_gl
    from vega3d.libero.runner import versions

    require_libero()
    settings = {"gl": resolve_gl(args.gl), "steps": args.steps, "camera_size": args.camera_size,
                "lp_threads": args.lp_threads}  # fmt: skip
    runs = []
    for n in args.workers:
        for render in (True, False) if not args.no_render_baseline else (True,):
            row = measure(n, {**settings, "render": render})
            runs.append(row)
            print(f"{n} process(es), {'2 cameras ' + str(args.camera_size) + ' px' if render else 'no cameras':>17}: "
                  f"{row['steps_per_s_per_process']:6.2f} steps/s per process, {row['aggregate_steps_per_s']:6.2f} aggregate "
                  f"({row['ms_per_step']:.0f} ms/step); import {row['import_s']:.1f} s, build {row['build_s']:.1f} s, "
                  f"reset {row['reset_s']:.1f} s, set_init_state {row['set_init_s']:.2f} s", flush=True)  # fmt: skip
    base = {r["render"]: r["aggregate_steps_per_s"] for r in runs if r["workers"] == args.workers[0]}
    summary = []
    for n in args.workers:
        with_cams = next(r for r in runs if r["workers"] == n and r["render"])
        line = {"workers": n, "aggregate_steps_per_s": with_cams["aggregate_steps_per_s"],
                "ratio_to_first": with_cams["aggregate_steps_per_s"] / base[True]}  # fmt: skip
        without = next((r for r in runs if r["workers"] == n and not r["render"]), None)
        if without:
            line["render_share"] = 1 - without["ms_per_step"] / with_cams["ms_per_step"]
        summary.append(line)
        print(f"N={n}: aggregate {line['aggregate_steps_per_s']:.2f} steps/s, x{line['ratio_to_first']:.2f} vs N={args.workers[0]}"
              + (f", rendering = {100 * line['render_share']:.0f} % of a step" if without else ""))  # fmt: skip
    if args.json:
        machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                   "load_average": os.getloadavg(), "python": sys.version.split()[0]}  # fmt: skip
        with open(args.json, "w") as fh:
            json.dump({"settings": settings, "runs": runs, "summary": summary, "machine": machine,
                       "versions": versions()}, fh, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
