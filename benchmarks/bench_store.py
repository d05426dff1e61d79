"""Feature store: reading stored features vs recomputing them, and store size per scene.

One run, same machine, same scenes:

1. ``--scenes`` synthetic scans of ``--frames`` frames are written to disk (SensReader layout)
   and a random-weight Wan stand-in to a folder (``--config cpu``: the CPU-sized config of
   benchmarks/bench_simulator.py — Wan2.1's 30 blocks and head width, small width — with
   block 20; ``--config tiny``: 4 blocks of width 32, block 2).
2. ``vega3d extract``'s library call writes them into a store (bf16, the default).
3. Timed, per scene (median over ``--repeats``):
   - *read*: ``FeatureStore.get(scene)`` from a freshly opened store (sha256 check included),
     every byte touched (the returned tensor may be backed by the memory-mapped file),
     and without the check (``verify=False``, what a long training run pays after the first
     read of each shard);
   - *recompute*: load the frames from the scan folder and run ``sim.extract`` (what online
     mode pays on a cache miss), and ``sim.extract`` alone on frames already in memory.
   The ratios recompute / read are printed.
4. Size: bytes per 32-frame scene at the default settings, computed for the real config
   (32 x 30 x 52 x 1536 at bf16: Wan2.1-1.3B, 832x480, per-frame mode) and measured on the
   stand-in (the shard size vs N*h*w*C*2 + header). With ``--real-item`` (default on) one item
   of the real shape (random values) is written and read back to time real-size reads.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_store.py [--json results.json]

Numbers are for this machine's CPU and disk (page cache warm after the first read); no GPU
was available, so recomputation on a GPU is not measured here (the paper reports 325.8 ms
per sample for its generative branch at 1280x720, Fig. 7).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from vega3d.files import write_json
from vega3d.scenes import synthetic_scene, write_scene
from vega3d.simulator import WanWorldSimulator
from vega3d.standin.wan import save_tiny_wan
from vega3d.store import FeatureStore, StoreWriter, make_store_config
from vega3d.store.extract import extract_to_store
from vega3d.store.inputs import discover_inputs, load_frames

CONFIGS = {
    # as benchmarks/bench_simulator.py "cpu": Wan2.1-1.3B depth, head width and ratios, small width
    "cpu": dict(model=dict(num_layers=30, dim=256, num_heads=2, ffn_dim=1536, text_dim=640, vae_base_dim=16), block=20),
    "tiny": dict(model=dict(num_layers=4, dim=32), block=2),
}
REAL = dict(frames=32, h=480 // 16, w=832 // 16, channels=1536)  # Wan2.1-T2V-1.3B at 832x480


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median wall time of ``fn()`` over ``repeats`` calls, and its last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    p.add_argument("--scenes", type=int, default=2)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=208)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-real-item", action="store_true", help="skip the real-shape (153 MB) item")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    cfg = CONFIGS[args.config]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for k in range(args.scenes):
            write_scene(
                synthetic_scene(args.frames, args.height, args.width, seed=k, name=f"scene{k:02d}"),
                tmp / "scans" / f"scene{k:02d}",
            )
        wan = save_tiny_wan(tmp / "wan", **cfg["model"])
        sim = WanWorldSimulator.from_pretrained(wan, height=args.height, width=args.width, block=cfg["block"])
        items = discover_inputs([tmp / "scans"])

        t0 = time.perf_counter()
        summary = extract_to_store(items, sim, tmp / "store", num_frames=args.frames, progress=False)
        extract_s = (time.perf_counter() - t0) / len(items)
        assert not summary.failed, summary.failed

        def read_all(verify: bool):
            store = FeatureStore(tmp / "store", verify=verify)
            return [store.get(it.item_id)[0].clone() for it in items]  # clone: touch every byte

        def recompute_all(frames=None):
            out = []
            for k, it in enumerate(items):
                x = frames[k] if frames is not None else load_frames(it, args.frames).frames
                out.append(sim.extract(x))
            return out

        read_verify_s, feats = timed(lambda: read_all(True), args.repeats)
        read_s, _ = timed(lambda: read_all(False), args.repeats)
        loaded = [load_frames(it, args.frames).frames for it in items]
        recompute_load_s, again = timed(lambda: recompute_all(), args.repeats)
        recompute_s, _ = timed(lambda: recompute_all(loaded), args.repeats)
        max_diff = max(float((a.float() - b.to(torch.bfloat16).float()).abs().max()) for a, b in zip(feats, again))

        n = len(items)
        record = FeatureStore(tmp / "store").entries()[0]
        n_, h, w, c = record["shape"]
        payload = n_ * h * w * c * 2
        results = {
            "machine": {
                "cpu": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "gpu": None,
            },
            "config": {
                "model": args.config,
                **cfg["model"],
                "block": cfg["block"],
                "height": args.height,
                "width": args.width,
                "frames": args.frames,
                "scenes": n,
                "precision": "bf16",
                "stand_in": True,
            },
            "per_scene_seconds": {
                "extract_and_write": extract_s,
                "read_store_with_sha256": read_verify_s / n,
                "read_store": read_s / n,
                "recompute_load_and_extract": recompute_load_s / n,
                "recompute_extract_only": recompute_s / n,
            },
            "ratios": {
                "recompute_load_and_extract / read_store_with_sha256": recompute_load_s / read_verify_s,
                "recompute_extract_only / read_store": recompute_s / read_s,
            },
            "stored_equals_recomputed_max_abs_diff": max_diff,
            "size_stand_in": {
                "shape": record["shape"],
                "bytes_per_scene": record["bytes"],
                "payload_bytes": payload,
                "header_bytes": record["bytes"] - payload,
            },
        }

        real_payload = REAL["frames"] * REAL["h"] * REAL["w"] * REAL["channels"] * 2
        results["size_real_config"] = {
            "shape": [REAL["frames"], REAL["h"], REAL["w"], REAL["channels"]],
            "bf16_bytes_per_scene": real_payload,
            "bf16_MiB_per_scene": real_payload / 2**20,
            "fp32_MiB_per_scene": 2 * real_payload / 2**20,
            "bf16_pool_15x26_MiB_per_scene": real_payload / 4 / 2**20,
            "scannet_1513_scans_bf16_GiB": 1513 * real_payload / 2**30,
        }
        if not args.no_real_item:
            writer = StoreWriter(tmp / "real", make_store_config({"model": "random real-shape features"}, "bf16"))
            g = torch.Generator().manual_seed(0)
            x = torch.randn(REAL["frames"], REAL["h"], REAL["w"], REAL["channels"], generator=g)
            t0 = time.perf_counter()
            rec = writer.write("real", list(range(REAL["frames"])), x)
            write_s = time.perf_counter() - t0

            def read_real(verify, frames=None):
                return FeatureStore(tmp / "real", verify=verify).get("real", frames)[0].clone()

            read_real_verify_s, _ = timed(lambda: read_real(True), args.repeats)
            read_real_s, _ = timed(lambda: read_real(False), args.repeats)
            read_frames_s, _ = timed(lambda: read_real(False, [0, 8, 16, 24]), args.repeats)
            results["size_real_config"]["measured_shard_bytes"] = rec["bytes"]
            results["real_shape_item_seconds"] = {
                "write (fsync)": write_s,
                "read_with_sha256": read_real_verify_s,
                "read": read_real_s,
                "read_4_of_32_frames": read_frames_s,
            }

    print(
        f"feature store benchmark: {args.config} stand-in ({cfg['model']['num_layers']} blocks, block "
        f"{cfg['block']}), {n} scenes x {args.frames} frames at {args.width}x{args.height}, bf16, CPU "
        f"({torch.get_num_threads()} threads)"
    )
    print(f"{'per scene':44s} {'seconds':>10s}")
    for k, v in results["per_scene_seconds"].items():
        print(f"  {k:42s} {v:10.4f}")
    for k, v in results["ratios"].items():
        print(f"  ratio {k:36s} {v:10.1f}x")
    print(f"  stored (bf16) vs recomputed, max abs diff     {max_diff:.3g}")
    s = results["size_stand_in"]
    print(
        f"size, stand-in: shape {s['shape']} -> {s['bytes_per_scene']} bytes per scene "
        f"({s['payload_bytes']} payload + {s['header_bytes']} header)"
    )
    r = results["size_real_config"]
    print(
        f"size, real config {r['shape']} bf16: {r['bf16_MiB_per_scene']:.1f} MiB per 32-frame scene "
        f"(fp32 {r['fp32_MiB_per_scene']:.1f} MiB; pooled to 15x26 {r['bf16_pool_15x26_MiB_per_scene']:.1f} MiB; "
        f"1513 ScanNet scans {r['scannet_1513_scans_bf16_GiB']:.0f} GiB)"
    )
    if "real_shape_item_seconds" in results:
        print(
            f"  measured shard: {r['measured_shard_bytes']} bytes; "
            + ", ".join(f"{k} {v:.3f} s" for k, v in results["real_shape_item_seconds"].items())
        )
    if args.json:
        write_json(args.json, results, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
