"""Everything in vega3d that needs a GPU to be measured, in one command (about 5 minutes on one H100).

    python benchmarks/gpu_check.py --out DIR          # a CUDA machine: real sizes, random weights
    python benchmarks/gpu_check.py --tiny --out DIR   # any machine: every section at tiny size on the CPU

Random weights at the real sizes (nothing is downloaded; only time and memory mean anything):
Wan2.1-T2V-1.3B (30 blocks, width 1536, the Wan2.1 VAE; DiT bf16, VAE float32 as the simulator's
default) and Qwen2.5-VL-7B-Instruct (28 layers, width 3584, 32-block vision tower; bf16, LoRA r=64).

Sections, in this order; each is guarded (a failure is recorded with its traceback and the next
section runs), and the results are rewritten after each one (DIR/gpu_check.json, DIR/gpu_check.md),
so a run cut short keeps what it measured:

1. ``simulator``: ms/frame, peak memory and DiT MFU at 832x480 and 1280x720 for 32 frames, against
   the straightforward way (one frame at a time, stock VAE, full DiT forward with a hook) in the same
   run (benchmarks/bench_simulator.py's measurement), and that both give the same features.
2. ``batching``: the DiT's measured activation memory per frame against the estimate the default
   ``batch_frames`` is derived from; what encoding one frame per VAE call costs against a batch.
3. ``determinism``: ``deterministic=True``: the same call twice, and batch sizes 1 / 4 / 16, bit for
   bit (max abs difference otherwise).
4. ``step``: a Qwen2.5-VL-7B + Wan training step (LoRA, bf16 autocast, gradient checkpointing, 16
   frames at 832x480): without the generative branch, with features read from a feature store,
   computed online, and from the online feature cache; seconds and peak memory each.
5. ``compile``: the DiT blocks eager against ``torch.compile`` (ms/frame, speed-up, compile time,
   max abs difference) — last, since compiling takes the longest to predict.

A section starts only while time is left (``--budget-s``). On a machine without CUDA, and without
``--tiny``, it prints "no GPU: nothing measured" and exits 0.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from timing import Peak, best_seconds, sync

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benchmarks' measurements

SIZES = {
    # Wan config (bench_simulator.CONFIGS), frame sizes (h, w), frames per call, block, timing rounds
    "real": dict(wan="wan1.3b", sizes=[(480, 832), (720, 1280)], frames=32, block=20, repeats=2, dtype="bfloat16",
                 batches=(1, 4, 16), det_frames=16, compile_frames=8, backend="inductor", qwen="7b", step_frames=16,
                 step_hw=(480, 832), qwen_pixels=256 * 28 * 28, lora=64),
    "tiny": dict(wan="tiny", sizes=[(64, 96), (80, 128)], frames=4, block=2, repeats=1, dtype="float32",
                 batches=(1, 2, 5), det_frames=5, compile_frames=2, backend="eager", qwen="tiny", step_frames=4,
                 step_hw=(64, 96), qwen_pixels=112 * 112, lora=4),
}  # fmt: skip
TINY_WAN = dict(dim=32, heads=2, ffn_dim=64, layers=4, text_dim=32, freq_dim=256, vae_base_dim=8)


# ----------------------------------------------------------------------------- helpers
def wan_models(size: dict, device, dit_dtype):
    """(config, DiT in ``dit_dtype``, VAE in float32): random weights, diffusers' float32 modules kept."""
    from bench_simulator import CONFIGS, build_models
    from vega3d.simulator.layouts import cast_like_diffusers

    cfg = TINY_WAN if size["wan"] == "tiny" else CONFIGS[size["wan"]]
    dit, vae = build_models(cfg, device, torch.float32)
    return cfg, cast_like_diffusers(dit, dit_dtype), vae


def simulator(dit, vae, cfg, size, **kw):
    """A WanWorldSimulator over the given modules with a random context and latent statistics."""
    from vega3d.simulator import WanWorldSimulator

    gen = torch.Generator().manual_seed(0)
    mean, std = torch.randn(16, generator=gen) * 0.5, torch.rand(16, generator=gen) + 0.5
    context = torch.randn(1, cfg["text_dim"], generator=gen)
    return WanWorldSimulator(dit, vae, mean, std, context, block=size["block"], stand_in=True, **kw)


def random_frames(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- sections
def section_simulator(size, device, dtype) -> dict:
    from bench_simulator import _peak_for, bench_size

    cfg, dit, vae = wan_models(size, device, dtype)
    peak = _peak_for(device)
    rows = []
    for h, w in size["sizes"]:
        print(f"  {w}x{h}, {size['frames']} frames", flush=True)
        rows.append(bench_size(cfg, dit, vae, device, h, w, size["frames"], size["repeats"], size["block"], None, peak))
    return {"peak_tflops": peak, "rows": rows}


def section_batching(size, device, dtype) -> dict:
    from vega3d.simulator.dit_prefix import dit_prefix
    from vega3d.simulator.simulator import default_batch_frames, dit_bytes_per_frame
    from vega3d.simulator.vae2d import FrameEncoder

    cfg, dit, vae = wan_models(size, device, dtype)
    h, w = size["sizes"][0]
    sim = simulator(dit, vae, cfg, size, height=h, width=w)
    out = {
        "size": f"{w}x{h}",
        "default_batch_frames": default_batch_frames(dit.config, h, w, dtype),
        "estimated_dit_bytes_per_frame": dit_bytes_per_frame(dit.config, h, w, dtype),
    }
    lat = {
        b: torch.randn(b, 16, 1, h // 8, w // 8, generator=torch.Generator().manual_seed(b)).to(device, dtype)
        for b in (1, 4)
    }
    peaks = {}
    for b, z in lat.items():
        with torch.no_grad(), Peak(device) as mem:
            dit_prefix(dit, z, sim._tproj, sim._context, size["block"])
        peaks[b] = mem.gib
    if device.type == "cuda":
        out["measured_dit_bytes_per_frame"] = (peaks[4] - peaks[1]) * 2**30 / 3
        out["measured_over_estimate"] = out["measured_dit_bytes_per_frame"] / out["estimated_dit_bytes_per_frame"]
    encoder, x = FrameEncoder(vae), (random_frames(8, h, w) * 2 - 1).to(device)
    with torch.no_grad():
        one = best_seconds(lambda: [encoder(x[i : i + 1]) for i in range(8)], device, size["repeats"])
        batch = best_seconds(lambda: encoder(x), device, size["repeats"])
    out.update(
        vae_ms_per_frame_one_per_call=1e3 * one / 8,
        vae_ms_per_frame_batch_8=1e3 * batch / 8,
        vae_one_per_call_over_batch=one / batch,
    )
    return out


def section_determinism(size, device, dtype) -> dict:
    cfg, dit, vae = wan_models(size, device, dtype)
    h, w = size["sizes"][0]
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    x = random_frames(size["det_frames"], h, w, seed=1)
    try:
        feats = {}
        for b in size["batches"]:
            feats[b] = simulator(dit, vae, cfg, size, height=h, width=w, batch_frames=b, deterministic=True).extract(x)
        again = simulator(dit, vae, cfg, size, height=h, width=w, batch_frames=size["batches"][0], deterministic=True)
        repeat = again.extract(x)
    finally:  # the switch is process-wide: the later sections run as without it
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]
    first = size["batches"][0]
    out = {
        "size": f"{w}x{h}",
        "frames": size["det_frames"],
        "same_batch_twice_identical": torch.equal(repeat, feats[first]),
    }
    for b in size["batches"][1:]:
        out[f"batch_{b}_vs_{first}_identical"] = torch.equal(feats[b], feats[first])
        out[f"batch_{b}_vs_{first}_max_abs_diff"] = float((feats[b] - feats[first]).abs().max())
    out["max_abs_feature"] = float(feats[first].abs().max())
    return out


def section_compile(size, device, dtype) -> dict:
    from vega3d.simulator.dit_prefix import dit_prefix

    cfg, dit, vae = wan_models(size, device, dtype)
    h, w = size["sizes"][0]
    sim = simulator(dit, vae, cfg, size, height=h, width=w)
    n, block = size["compile_frames"], size["block"]
    z = torch.randn(n, 16, 1, h // 8, w // 8, generator=torch.Generator().manual_seed(2)).to(device, dtype)
    compiled = [torch.compile(b, backend=size["backend"]) for b in dit.blocks[: block + 1]]
    with torch.no_grad():
        eager_out = dit_prefix(dit, z, sim._tproj, sim._context, block)
        sync(device)
        t0 = time.perf_counter()
        compiled_out = dit_prefix(dit, z, sim._tproj, sim._context, block, compiled)  # compiles
        sync(device)
        compile_s = time.perf_counter() - t0
        eager = best_seconds(lambda: dit_prefix(dit, z, sim._tproj, sim._context, block), device, size["repeats"] + 1)
        fast = best_seconds(
            lambda: dit_prefix(dit, z, sim._tproj, sim._context, block, compiled), device, size["repeats"] + 1
        )
    return {
        "size": f"{w}x{h}",
        "frames": n,
        "backend": size["backend"],
        "compile_seconds": compile_s,
        "eager_dit_ms_per_frame": 1e3 * eager / n,
        "compiled_dit_ms_per_frame": 1e3 * fast / n,
        "speedup": eager / fast,
        "max_abs_diff": float((eager_out.float() - compiled_out.float()).abs().max()),
        "max_abs_feature": float(eager_out.float().abs().max()),
    }


def _qwen(size, device, workdir: Path):
    """(base Qwen2.5-VL, processor): the 7B architecture with random weights (real) or the tiny stand-in."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from vega3d.mllm.processing import Vega3DProcessor
    from vega3d.standin.qwen import save_tiny_qwen25vl

    folder = save_tiny_qwen25vl(workdir / "qwen")  # tokenizer, chat template, image processor (any size)
    processor = Vega3DProcessor.from_pretrained(folder, video_min_pixels=56 * 56, video_max_pixels=size["qwen_pixels"])
    if size["qwen"] == "tiny":
        return Qwen2_5_VLForConditionalGeneration.from_pretrained(folder).to(device), processor
    from bench_mllm import QWEN25VL_7B

    with torch.device(device):
        base = Qwen2_5_VLForConditionalGeneration._from_config(
            Qwen2_5_VLConfig(**copy.deepcopy(QWEN25VL_7B)), dtype=torch.bfloat16
        )
    return base, processor


def _real_token_ids(batch: dict, tokenizer, config) -> None:
    """The stand-in tokenizer's vision-token ids → the real model's (in place)."""
    pairs = [
        ("<|video_pad|>", "video_token_id"),
        ("<|vision_start|>", "vision_start_token_id"),
        ("<|vision_end|>", "vision_end_token_id"),
        ("<|image_pad|>", "image_token_id"),
    ]
    remap = {tokenizer.convert_tokens_to_ids(t): getattr(config, k) for t, k in pairs}
    for key in ("input_ids", "labels"):
        x, orig = batch[key], batch[key].clone()
        for a, b in remap.items():
            x[orig == a] = b


def section_step(size, device, dtype) -> dict:
    from bench_mllm import make_batch
    from vega3d.mllm.config import Vega3DConfig
    from vega3d.mllm.model import Vega3DQwen
    from vega3d.store import OnlineFeatureCache, StoreWriter, make_store_config
    from vega3d.store.store import FeatureStore

    cfg, dit, vae = wan_models(size, device, dtype)
    h, w = size["step_hw"]
    sim = simulator(dit, vae, cfg, size, height=h, width=w)
    with tempfile.TemporaryDirectory() as tmp:
        base, processor = _qwen(size, device, Path(tmp))
        batch, frames = make_batch(processor, size["step_frames"], h, w, device)
        if size["qwen"] != "tiny":
            _real_token_ids(batch, processor.tokenizer, base.config)
        frames_t = batch.pop("video_frames")[0]
        indices = list(range(size["step_frames"]))
        writer = StoreWriter(Path(tmp) / "store", make_store_config(sim))  # bf16: the store's default
        writer.write("scene", indices, sim.extract(frames_t))
        store = FeatureStore(Path(tmp) / "store")
        cache = OnlineFeatureCache(sim, max_bytes=8 << 30, precision="fp32")
        lora = {"r": size["lora"], "alpha": 2 * size["lora"], "dropout": 0.0}
        vcfg = Vega3DConfig(base_model="(random weights)", generative_dim=cfg["dim"], llm="lora", lora=lora)
        model = Vega3DQwen(base, vcfg).to(device)
        model.attach_simulator(sim)
        model.gradient_checkpointing_enable()
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        variants = {
            "no generative branch": lambda: dict(generative=False),
            "features from a feature store": lambda: dict(video_features=[store.get("scene", indices)[0].to(device)]),
            "features online": lambda: dict(video_frames=[frames_t]),
            "features online, cached": lambda: dict(video_features=[cache.get("scene", indices, frames_t).to(device)]),
        }
        rows = []
        for name, extra in variants.items():
            print(f"  step: {name}", flush=True)

            def step(extra=extra):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    out = model(**batch, **extra())
                out.loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            with Peak(device) as mem:
                seconds = best_seconds(step, device, size["repeats"] + 1)
            rows.append(
                {"variant": name, "step_seconds": seconds, "peak_gib": mem.total_gib, "above_model_gib": mem.gib}
            )
    base_s = rows[0]["step_seconds"]
    for r in rows:
        r["over_no_generative_branch"] = r["step_seconds"] / base_s
    return {
        "frames": size["step_frames"],
        "frame_size": f"{w}x{h}",
        "sequence_length": int(batch["input_ids"].shape[1]),
        "video_grid_thw": batch["video_grid_thw"].tolist(),
        "cache_hits": cache.hits,
        "cache_misses": cache.misses,
        "rows": rows,
    }


SECTIONS = {
    "simulator": section_simulator,
    "batching": section_batching,
    "determinism": section_determinism,
    "step": section_step,
    "compile": section_compile,
}


# ----------------------------------------------------------------------------- report
#: The columns of a section's table in gpu_check.md (the JSON has every value).
TABLE_COLUMNS = {
    "simulator": ["size", "frames", "batch_frames", "straightforward_ms_per_frame", "simulator_ms_per_frame", "speedup",
                  "simulator_vae_ms_per_frame", "simulator_dit_ms_per_frame", "dit_mfu", "end_to_end_dit_mfu",
                  "straightforward_peak_mib", "simulator_peak_mib", "max_abs_diff"],
}  # fmt: skip


def markdown(result: dict) -> str:
    """The results as readable tables."""
    lines = [
        f"# vega3d GPU check — {result['device']}",
        "",
        f"`{result['command']}`; torch {result['torch']}; "
        f"{'TINY sizes on the CPU (numbers meaningless)' if result['tiny'] else 'real sizes, random weights'}",
        "",
    ]
    for name, sec in result["sections"].items():
        lines += [f"## {name}", ""]
        if "error" in sec or "skipped" in sec:
            lines += [f"**{'FAILED' if 'error' in sec else 'skipped'}**: {sec.get('error') or sec.get('skipped')}", ""]
            continue
        if sec.get("rows"):
            cols = [c for c in TABLE_COLUMNS.get(name, sec["rows"][0]) if c in sec["rows"][0]]
            lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in sec["rows"]]
            lines += ["", "(all values: gpu_check.json)" if name in TABLE_COLUMNS else "", ""]
        scalars = {k: v for k, v in sec.items() if k != "rows" and not isinstance(v, (list, dict))}
        lines += ["| " + " | ".join(scalars) + " |", "|" + "---|" * len(scalars)]
        lines += ["| " + " | ".join(_fmt(v) for v in scalars.values()) + " |", ""]
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def write(out: Path, result: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "gpu_check.md").write_text(markdown(result) + "\n")


def run(name: str, size: dict, device, dtype, result: dict, out: Path, deadline: float) -> None:
    """One guarded section: its result, or its error, or why it was skipped; then the files."""
    start = time.time()
    elapsed = start - result["started_unix"]
    if start > deadline:
        result["sections"][name] = {"skipped": f"time budget spent ({elapsed:.0f} s)"}
    else:
        print(f"[gpu_check {elapsed:5.0f} s] {name} ...", flush=True)
        try:
            result["sections"][name] = {**SECTIONS[name](size, device, dtype), "seconds": time.time() - start}
        except Exception as err:  # noqa: BLE001 - one failing section must not lose the others
            result["sections"][name] = {
                "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(limit=8),
            }
        status = "FAILED: " + result["sections"][name]["error"] if "error" in result["sections"][name] else "ok"
        print(f"[gpu_check {time.time() - result['started_unix']:5.0f} s] {name}: {status}", flush=True)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    write(out, result)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json and gpu_check.md")
    p.add_argument("--tiny", "--dry-run", action="store_true", help="every section at tiny size on the CPU")
    p.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    p.add_argument("--budget-s", type=float, default=420.0, help="start no section after this many seconds")
    args = p.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print("no GPU: nothing measured")
        return 0
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before any CUDA work (the determinism section)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    size = SIZES["tiny" if args.tiny else "real"]
    device = torch.device("cpu" if args.tiny else "cuda")
    dtype = getattr(torch, size["dtype"])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})"
    result = {
        "device": name,
        "tiny": args.tiny,
        "torch": torch.__version__,
        "started_unix": time.time(),
        "command": " ".join(["gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "sections": {},
    }
    deadline = result["started_unix"] + args.budget_s
    for section in args.sections:
        run(section, size, device, dtype, result, args.out, deadline)
    result["wall_seconds"] = time.time() - result["started_unix"]
    write(args.out, result)
    failed = [k for k, v in result["sections"].items() if "error" in v]
    print(
        f"gpu_check: {len(result['sections']) - len(failed)} of {len(result['sections'])} sections ok"
        + (f" (failed: {', '.join(failed)})" if failed else "")
        + f" -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
