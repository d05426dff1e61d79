"""Object features for 50 proposals x 32 frames: one vectorised pass vs the released per-box loop.

Both compute, for every proposal, the SigLIP cells (27 x 27 per frame) holding >= 98 of their 196
pixels inside the box, then the mean of the pre-pool features (F, 27, 27, D) over those cells of
all frames, plus sin3d of the discretised centre:

- ``vectorised`` — :func:`vega3d.video3d.box_cells` on all boxes at once (each cell's bounds
  once, the 196-pixel count only where a cell's bounds meet a box) and
  :func:`vega3d.video3d.object_features` (the selected rows gathered and summed per box);
- ``per_box`` — the release's structure (``llava_arch.py``, ``patch14``): a Python loop over the
  boxes, each with a dense cell test (every pixel of every cell against the box), a boolean
  gather of the selected rows, their mean, and sin3d (written here from that code's formulas).

World maps come from a synthetic 32-frame scan (:func:`vega3d.scenes.synthetic_scene`, 384 x 384
maps); the 50 boxes are the scan's objects plus random boxes in the room; features are random
(F, 27, 27, D), D = 3584 (LLaVA-Video-7B) by default, float32. Prints the seconds of each (best
of ``--repeats`` after one warm-up) and the ratios, checks both give the same features, and writes
JSON with ``--out``. ``per_box_features`` is derived (per-box total minus its cell step). CPU, one
process, both variants in the same run:

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_video3d.py --out bench_video3d.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch


def dense_cells(world, box):
    """One box's cells the release's way: every pixel of every cell tested against the box."""
    lo, hi = box[:3] - box[3:] / 2, box[:3] + box[3:] / 2
    cells = world[:, :378, :378, :].reshape(-1, 27, 14, 27, 14, 3).transpose(2, 3).flatten(3, 4)  # (F, 27, 27, 196, 3)
    return torch.all((lo <= cells) & (cells <= hi), dim=-1).sum(dim=3) >= 98


def per_box(world, boxes, pre_pool):
    """The release's loop (``llava_arch.py``, ``patch14``): per box a dense cell test, a boolean
    gather of the selected rows, their mean, and sin3d of the discretised centre."""
    from vega3d.video3d import discretize, sin3d

    flat = pre_pool.reshape(-1, pre_pool.shape[-1])
    cells = [dense_cells(world, box) for box in boxes]
    out = []
    for box, c in zip(boxes, cells):
        picked = flat[c.reshape(-1)]
        feat = picked.mean(0) if len(picked) else torch.zeros(flat.shape[1], dtype=flat.dtype)
        out.append(feat + sin3d(discretize(box[:3]), flat.shape[1]))
    return torch.stack(out)


def vectorised(world, boxes, pre_pool):
    from vega3d.video3d import box_cells, object_features

    return object_features(pre_pool, box_cells(world, boxes), boxes[:, :3])


def best_of(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--boxes", type=int, default=50)
    parser.add_argument("--dim", type=int, default=3584)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from vega3d.scenes import synthetic_scene
    from vega3d.video3d import box_cells, object_features, world_coordinate_map

    scene = synthetic_scene(num_frames=args.frames, height=120, width=160, seed=0, arc_degrees=300)
    world = world_coordinate_map(scene.depth, scene.intrinsics_depth, scene.poses)  # (F, 384, 384, 3)
    rng = np.random.default_rng(0)
    objs = scene.extras["objects"]
    known = [[*(np.add(b["lo"], b["hi"]) / 2), *np.subtract(b["hi"], b["lo"])] for b in objs["boxes"]]
    lo, hi = np.asarray(objs["room_lo"]), np.asarray(objs["room_hi"])
    extra = [[*rng.uniform(lo, hi), *rng.uniform(0.2, 1.5, 3)] for _ in range(args.boxes - len(known))]
    boxes = torch.tensor(known + extra, dtype=torch.float32)[: args.boxes]
    pre_pool = torch.randn(args.frames, 27, 27, args.dim, generator=torch.Generator().manual_seed(0))

    t_cells_vec, cells = best_of(lambda: box_cells(world, boxes), args.repeats)
    t_feat_vec, _ = best_of(lambda: object_features(pre_pool, cells, boxes[:, :3]), args.repeats)
    t_vec, got = best_of(lambda: vectorised(world, boxes, pre_pool), args.repeats)
    t_loop, want = best_of(lambda: per_box(world, boxes, pre_pool), args.repeats)
    t_cells_loop, dense = best_of(lambda: torch.stack([dense_cells(world, b) for b in boxes]), args.repeats)
    assert torch.equal(dense, cells)
    max_diff = float((got - want).abs().max())
    assert max_diff < 1e-3, max_diff
    result = {
        "frames": args.frames,
        "boxes": args.boxes,
        "dim": args.dim,
        "boxes_with_cells": int(cells.flatten(1).any(1).sum()),
        "seconds": {
            "vectorised_total": t_vec,
            "per_box_total": t_loop,
            "vectorised_cells": t_cells_vec,
            "per_box_cells": t_cells_loop,
            "vectorised_features": t_feat_vec,
            "per_box_features": max(t_loop - t_cells_loop, 0.0),
        },
        "ratio_total": t_loop / t_vec,
        "ratio_cells": t_cells_loop / t_cells_vec,
        "ratio_features": max(t_loop - t_cells_loop, 0.0) / t_feat_vec,
        "max_abs_diff": max_diff,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
    }
    s = result["seconds"]
    print(f"{args.boxes} boxes x {args.frames} frames, D={args.dim}, {torch.get_num_threads()} threads")
    print(
        f"  cells     vectorised {s['vectorised_cells']:.3f} s   per box {s['per_box_cells']:.3f} s   x{result['ratio_cells']:.2f}"
    )
    print(
        f"  features  vectorised {s['vectorised_features']:.3f} s   per box {s['per_box_features']:.3f} s   x{result['ratio_features']:.2f}"
    )
    print(
        f"  total     vectorised {s['vectorised_total']:.3f} s   per box {s['per_box_total']:.3f} s   x{result['ratio_total']:.2f}"
    )
    print(f"  same features (max |diff| {max_diff:.2e}); {result['boxes_with_cells']} boxes select cells")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
