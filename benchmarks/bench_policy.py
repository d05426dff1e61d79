"""Benchmark OpenVLA-OFT policy latency per action chunk, without and with the generative branch.

One :meth:`vega3d.policy.OFTPolicy.act` call is one chunk of K = 8 actions (what the LIBERO
harness asks for every 8 control steps): preprocessing, both ViTs, the projector, the Llama
pass over ~600 tokens with parallel decoding, the action head, and with the branch also the
Wan simulator on the third-person image (VAE + DiT up to the block) and the fusion. The two
policies run interleaved in one process (``--repeats`` rounds) on the same observations, so the
ratio compares like with like.

Default: the random-weight tiny STAND-INs of the tests on the CPU (OFT: 224² images, 16 x 16 patch
grids, a 2-layer Llama of width 32; Wan: 4 blocks of width 32 at 256²) — the ratio there says how
much the branch's machinery costs next to a tiny policy, not what it costs next to a 7B one.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_policy.py --out bench_policy.json

Real size (a GPU; not measured here — no GPU was available when this was written):

    python benchmarks/bench_policy.py --base /ckpt/openvla-7b-oft-finetuned-libero-spatial \
        --wan /ckpt/Wan2.1-T2V-1.3B --device cuda --out bench_policy_real.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vega3d.files import write_json


def observations(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"agentview": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
             "wrist": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
             "proprio": rng.normal(size=8), "language": "pick up the black bowl and place it on the plate", "step": 0}
            for _ in range(n)]  # fmt: skip


def policies(base: Path, wan: Path, work: Path, device: str, block: int) -> dict:
    from vega3d.libero.policies import EpisodeInfo
    from vega3d.policy.policy import OFTPolicy
    from vega3d.standin.oft import save_tiny_branch_policy

    branch = save_tiny_branch_policy(work / "branch", base, wan, block=block, lora_scope="none")  # the branch only
    out = {
        "plain": OFTPolicy.from_pretrained(base, device=device),
        "branch": OFTPolicy.from_pretrained(branch, device=device),
    }
    for p in out.values():
        p.reset(EpisodeInfo("libero_spatial", 0, "task", "pick up", 0, 7))
    return out


def time_chunks(policies: dict, obs: list[dict], repeats: int, device: str) -> dict:
    times = {name: [] for name in policies}
    for _ in range(repeats):
        for name, policy in policies.items():
            for o in obs:
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
                policy.act(o)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - start)
    return {name: {"median_ms": 1e3 * statistics.median(t), "mean_ms": 1e3 * statistics.fmean(t), "calls": len(t)}
            for name, t in times.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="an OpenVLA-OFT folder (default: the tiny stand-in)")
    parser.add_argument("--wan", type=Path, help="a Wan2.1-T2V folder (default: the tiny stand-in)")
    parser.add_argument("--block", type=int, default=None, help="DiT block (default: 3 tiny, 20 real)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--observations", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench_policy.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.base is None:
            from vega3d.standin.oft import save_tiny_oft

            args.base = save_tiny_oft(work / "oft")
        if args.wan is None:
            from vega3d.standin.wan import save_tiny_wan

            args.wan = save_tiny_wan(work / "wan", num_layers=4, dim=32)
        block = args.block if args.block is not None else (3 if (args.wan / "STAND_IN.md").exists() else 20)
        pols = policies(args.base, args.wan, work, args.device, block)
        obs = observations(args.observations)
        time_chunks(pols, obs[:1], 1, args.device)  # warm-up
        result = time_chunks(pols, obs, args.repeats, args.device)
    result["ratio_branch_to_plain"] = result["branch"]["median_ms"] / result["plain"]["median_ms"]
    result["setup"] = {"base": str(args.base), "wan": str(args.wan), "device": args.device, "block": block,
                       "threads": torch.get_num_threads(), "torch": torch.__version__}  # fmt: skip
    write_json(args.out, result)
    print(f"{'policy':8} {'median ms/chunk':>16} {'mean ms/chunk':>14} {'calls':>6}")
    for name in ("plain", "branch"):
        r = result[name]
        print(f"{name:8} {r['median_ms']:16.1f} {r['mean_ms']:14.1f} {r['calls']:6d}")
    print(f"branch / plain: {result['ratio_branch_to_plain']:.2f}x  (wrote {args.out})")


if __name__ == "__main__":
    main()
