"""Paying for the frozen simulator once: the online feature cache and the prompt-context cache, in one run.

Three measurements, each against the same thing without the cache, on the same machine in one run:

- ``training``: online training (``vega3d.training.loop.train``, features computed by the attached
  simulator) over 2 epochs: epoch 2 time / epoch 1 time, with the feature cache (the default:
  epoch 2 reads every video's features) and without it (``train.feature_cache_bytes=0``);
- ``eval_model``: ``run_benchmark`` (what ``vega3d eval-model`` runs) twice over the same scenes with
  a fresh answerer each time, as two ``eval-model`` runs are: second run / first run, with the
  cache's disk tier (``--feature-cache-dir``: the second run reads the first run's features) and
  without it;
- ``prompt_context``: loading the empty-prompt context from the prompt-context cache against
  computing it with the text encoder (``vega3d.simulator.layouts.text_encoder_context``).

Models: random-weight STAND-INs on the CPU — the tiny Qwen2.5-VL of the tests (8 records, 8
frames each) and a Wan stand-in with Wan2.1-1.3B's depth (30 blocks, features of block 20) at
width 64, run at 240x416. How much the cache saves is the simulator's share of the work, which
depends on the two models' sizes: here the simulator is most of it (beside a 2-layer Qwen), so
the ratios come close to what the cache can do at best; at the real sizes (Wan2.1-1.3B beside
Qwen2.5-VL-7B) benchmarks/gpu_check.py's ``step`` section measures it. Times are wall clock.
The tiny umT5 stand-in loads in a tenth of a second; the real 5.7B encoder reads 11 GB of
weights, so its ratio is far smaller still.

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_feature_cache.py --out bench_feature_cache.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_eval_media's media and questions

REPO = Path(__file__).resolve().parents[1]
WAN = dict(num_layers=30, dim=64, num_heads=4, ffn_dim=256, text_dim=64, vae_base_dim=8)  # 1.3B's depth, tiny width
BLOCK = 20


def _epochs(log: list[dict]) -> tuple[float, float]:
    """Seconds of epoch 1 and epoch 2 from log.jsonl's elapsed times (one line per step)."""
    end = {r["epoch"]: r["elapsed_s"] for r in log}
    return end[0], end[1] - end[0]


def bench_training(root: Path, tiny: dict, records: int) -> dict:
    from vega3d.training.config import load_train_config
    from vega3d.training.loop import train

    rows = {}
    for name, extra in (("with cache", []), ("without cache", ["train.feature_cache_bytes=0"])):
        out = root / name.replace(" ", "_")
        overrides = [f"model.base_model={tiny['qwen']}", f"simulator.path={tiny['wan']}", f"simulator.block={BLOCK}",
                     f"model.generative_dim={WAN['dim']}", f"data.annotations={tiny['annotations']}",
                     f"train.output_dir={out}", "train.save_every=0", "train.epochs=2", "simulator.height=240",
                     "simulator.width=416", "data.num_frames=8", *extra]  # fmt: skip
        with contextlib.redirect_stderr(io.StringIO()):
            train(load_train_config(REPO / "configs" / "tiny.yaml", overrides), progress=False)
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        first, second = _epochs(log)
        rows[name] = {"epoch_1_s": first, "epoch_2_s": second, "epoch_2_over_epoch_1": second / first,
                      "cache": {k: v for k, v in log[-1].items() if k.startswith("feature_cache_")}}  # fmt: skip
    return {"records": records, "rows": rows}


def _checkpoint(root: Path, tiny: dict) -> Path:
    """A VEGA-3D checkpoint over the tiny Qwen and the 30-block Wan stand-in (random weights)."""
    from vega3d.mllm.config import Vega3DConfig
    from vega3d.mllm.model import Vega3DQwen
    from vega3d.simulator import WanWorldSimulator

    sim = WanWorldSimulator.from_pretrained(tiny["wan"], block=BLOCK, height=240, width=416)
    pre = {"num_frames": 8, "video_min_pixels": 56 * 56, "video_max_pixels": 112 * 112, "frame_fps": 1.0}
    config = Vega3DConfig(base_model=str(tiny["qwen"]), generative_dim=WAN["dim"], simulator=sim.config.to_dict(),
                          preprocessing=pre)  # fmt: skip
    return Vega3DQwen.from_config(config).save_pretrained(root / "checkpoint")


def bench_eval(root: Path, tiny: dict, videos: int, per_video: int) -> dict:
    from bench_eval_media import write_media, write_questions
    from vega3d.eval.run import run_benchmark
    from vega3d.mllm.infer import Answerer

    checkpoint = _checkpoint(root, tiny)
    scenes = write_media(root / "media", videos, 24, 240, 320)
    gt = root / "questions.json"
    write_questions(gt, scenes, per_video)

    def run(disk, out: Path) -> float:
        answerer = Answerer.from_checkpoint(checkpoint, feature_cache_dir=disk)  # a fresh process's answerer
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            run_benchmark("sqa3d", answerer, gt, root / "media", out, max_new_tokens=4, progress=False)
        return time.perf_counter() - t0

    run(None, root / "warm-up")  # first-call costs (imports, allocator) out of the timings
    rows = {}
    for name, disk in (("with disk tier", root / "features"), ("without disk tier", None)):
        seconds = [run(disk, root / f"{name.replace(' ', '_')}-{i}") for i in range(2)]
        rows[name] = {
            "first_run_s": seconds[0],
            "second_run_s": seconds[1],
            "second_over_first": seconds[1] / seconds[0],
        }
    return {"videos": videos, "questions": videos * per_video, "rows": rows}


def bench_prompt(root: Path, repeats: int) -> dict:
    from vega3d.simulator.layouts import text_encoder_context
    from vega3d.standin.wan import save_tiny_wan

    model = save_tiny_wan(root / "wan-te", num_layers=2, with_text_encoder=True)
    os.environ["VEGA3D_CACHE"] = str(root / "cache")
    times = {"computed": [], "hit": []}
    for _ in range(repeats):
        for status in ("computed", "hit"):  # an empty cache folder, then the entry just written
            if status == "computed":
                for entry in (root / "cache").rglob("*.safetensors"):
                    entry.unlink()
            t0 = time.perf_counter()
            got = text_encoder_context(model)[2]
            times[status].append(time.perf_counter() - t0)
            assert got == status, (got, status)
    best = {k: min(v) for k, v in times.items()}
    return {"computed_s": best["computed"], "read_s": best["hit"], "read_over_computed": best["hit"] / best["computed"]}


def main(argv=None) -> dict:
    from vega3d.standin.data import write_tiny_setup
    from vega3d.standin.wan import save_tiny_wan

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=3, help="eval: scenes (one video each)")
    parser.add_argument("--questions-per-video", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="prompt context: best of this many loads each way")
    parser.add_argument("--out", type=Path, default=None, help="write the results here (JSON)")
    args = parser.parse_args(argv)
    result = {"benchmark": "feature cache + prompt-context cache (stand-ins, CPU)", "torch": torch.__version__,
              "device": f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)",
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["VEGA3D_CACHE"] = str(root / "cache")  # never the user's cache
        with contextlib.redirect_stderr(io.StringIO()):
            tiny = write_tiny_setup(root / "setup", num_records=8, num_frames=8, height=112, width=168)
            tiny["wan"] = save_tiny_wan(root / "wan30", **{k: v for k, v in WAN.items()})
        result["training"] = bench_training(root / "train", tiny, records=8)
        result["eval_model"] = bench_eval(root / "eval", tiny, args.videos, args.questions_per_video)
        result["prompt_context"] = bench_prompt(root / "prompt", args.repeats)
    _print(result)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _print(r: dict) -> None:
    print(f"# {r['benchmark']} — {r['device']}, torch {r['torch']}")
    print("| measurement | with cache | without cache |\n|---|---|---|")
    t = r["training"]["rows"]
    print(f"| training: epoch 2 / epoch 1 | {t['with cache']['epoch_2_over_epoch_1']:.2f} | "
          f"{t['without cache']['epoch_2_over_epoch_1']:.2f} |")  # fmt: skip
    e = r["eval_model"]["rows"]
    print(f"| eval-model: second run / first (disk tier) | {e['with disk tier']['second_over_first']:.2f} | "
          f"{e['without disk tier']['second_over_first']:.2f} |")  # fmt: skip
    p = r["prompt_context"]
    print(f"| prompt context: read / computed | {p['read_over_computed']:.3f} ({1e3 * p['read_s']:.1f} ms) | "
          f"1 ({1e3 * p['computed_s']:.0f} ms) |")  # fmt: skip


if __name__ == "__main__":
    main()
