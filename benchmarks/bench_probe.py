"""Time ``vega3d.probe.score`` on a 32-frame scene (CPU), against a per-pair loop.

The straightforward way scores one frame pair at a time (sample, reproject, read the grids,
compare) in a Python loop; ``score`` does all pairs of the scene in one batched pass. Both
are timed here in the same run on the same scene and features, and the ratio is printed.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_probe.py \
        --frames 32 --height 480 --width 640 --grid 30x52 --channels 1536

Features are random (timing does not depend on their content); the grid/channels default
to Wan2.1's block features for a 480x832 simulator input (30x52 cells, C = 1536).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vega3d.probe import score
from vega3d.probe.paper import paper_score
from vega3d.probe.result import ProbeOptions
from vega3d.probe.rigorous import rigorous_score
from vega3d.scenes import synthetic_scene


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--grid", default="30x52")
    ap.add_argument("--channels", type=int, default=1536)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--loop-pairs", type=int, default=60, help="pairs timed in the per-pair loop (extrapolated)")
    args = ap.parse_args()
    h, w = (int(v) for v in args.grid.split("x"))

    t0 = time.perf_counter()
    scene = synthetic_scene(num_frames=args.frames, height=args.height, width=args.width, seed=0)
    t_scene = time.perf_counter() - t0
    feats = torch.randn(args.frames, h, w, args.channels, generator=torch.Generator().manual_seed(0))

    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        res = score(scene, feats)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    t_score = min(times)
    t0 = time.perf_counter()
    paper_score(scene, feats, list(range(args.frames)))
    t_paper = time.perf_counter() - t0

    # the per-pair loop: one rigorous_score call per frame pair (same kernel, one pair at a time).
    # CPU (process) time is compared: this machine may be shared, which inflates wall time.
    opts = ProbeOptions(min_overlap=0.0, min_motion_px=0.0)
    pairs = [(i, j) for i in range(args.frames) for j in range(i + 1, args.frames)]
    step = max(1, len(pairs) // args.loop_pairs)
    timed = pairs[::step][: args.loop_pairs]
    c0 = time.process_time()
    for i, j in timed:
        try:
            rigorous_score(scene, feats, [i, j], opts)
        except ValueError:
            pass
    t_loop = (time.process_time() - c0) / len(timed) * len(pairs)
    batched = []
    for _ in range(args.repeats):
        c0 = time.process_time()
        rigorous_score(scene, feats, list(range(args.frames)), opts)
        batched.append(time.process_time() - c0)
    t_batched = min(batched)

    report = {
        "scene": f"synthetic {args.frames} frames {args.height}x{args.width} (generated in {t_scene:.1f} s)",
        "features": f"{args.frames}x{h}x{w}x{args.channels} float32",
        "threads": torch.get_num_threads(),
        "score_wall_seconds (paper + rigorous + pose check, default options, best of repeats)": round(t_score, 2),
        "score_cpu_seconds (process time; the machine may be shared)": round(min(cpu), 2),
        "paper_score_seconds": round(t_paper, 2),
        "pairs_scored_default_options": res.num_pairs,
        "rigorous_all_pairs_batched_cpu_seconds": round(t_batched, 2),
        f"rigorous_per_pair_loop_cpu_seconds (extrapolated from {len(timed)} pairs)": round(t_loop, 2),
        "per_pair_loop / batched": round(t_loop / t_batched, 1),
        "num_pairs_all": len(pairs),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
