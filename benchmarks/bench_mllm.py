"""VEGA-3D Qwen2.5-VL training step: generative branch on vs the baseline switch.

Measures, in one run and on one device, the wall time of a full training step (forward,
backward, AdamW step) and the peak memory for

- ``vega3d``: simulator features computed online (frozen Wan DiT up to the block), aligned,
  projected and fused into the visual tokens — the VEGA-3D model;
- ``baseline``: the same model with ``generative=False`` (pixels straight to Qwen2.5-VL);
- ``simulator``: the simulator's feature extraction alone.

Sizes:
- ``--size tiny`` (default, CPU is fine): the random-weight stand-ins of the tests.
- ``--size real`` (needs a GPU): random weights at the REAL sizes — Qwen2.5-VL-7B-Instruct
  (28 layers, width 3584, vision tower 32 blocks) and Wan2.1-T2V-1.3B (30 blocks, width
  1536, the Wan2.1 VAE) — LoRA r=64 on the LLM, bf16 weights + bf16 autocast, gradient
  checkpointing, 16 frames at 480x832, Qwen at 256*28*28 pixels per frame. Nothing is
  downloaded; the weights are random, so only time and memory mean anything.
- ``--size count`` (any machine): trainable parameters and checkpoint size per training
  mode at the real sizes, from the model built on the meta device.

Output: a JSON file and a table. Run with OMP_WAIT_POLICY=PASSIVE on CPU:

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_mllm.py --size tiny --out bench_mllm_tiny.json
    python benchmarks/bench_mllm.py --size real --device cuda --out bench_mllm_real.json
    python benchmarks/bench_mllm.py --size count --out bench_mllm_count.json
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from timing import Peak, best_seconds

# Qwen2.5-VL-7B-Instruct's config.json (architecture fields).
QWEN25VL_7B = dict(
    text_config=dict(
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=128000,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
        bos_token_id=151643,
        eos_token_id=151645,
    ),
    vision_config=dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=3584,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        tokens_per_second=2,
        window_size=112,
        fullatt_block_indexes=[7, 15, 23, 31],
    ),
    image_token_id=151655,
    video_token_id=151656,
    vision_start_token_id=151652,
    vision_end_token_id=151653,
)
# Wan2.1-T2V-1.3B DiT and VAE sizes.
WAN_13B = dict(num_layers=30, dim=1536, num_heads=12, ffn_dim=8960, text_dim=4096, vae_base_dim=96)


def build(size, workdir: Path, device, dtype):
    """(base Qwen model, processor, simulator, generative_dim, frame size, num_frames, pixel budget)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from vega3d.mllm.processing import Vega3DProcessor
    from vega3d.simulator import WanWorldSimulator
    from vega3d.standin.qwen import save_tiny_qwen25vl
    from vega3d.standin.wan import build_tiny_transformer, build_tiny_vae

    qwen_dir = save_tiny_qwen25vl(workdir / "qwen")  # tokenizer + processor files (any size)
    gen = torch.Generator().manual_seed(0)
    if size == "tiny":
        base = Qwen2_5_VLForConditionalGeneration.from_pretrained(qwen_dir, dtype=dtype)
        wan = dict(num_layers=2, dim=32, num_heads=2, ffn_dim=64, text_dim=32, vae_base_dim=8)
        block, (height, width), num_frames, pixels = 1, (64, 96), 4, 112 * 112
    else:
        config = Qwen2_5_VLConfig(**copy.deepcopy(QWEN25VL_7B))
        with torch.device(device):
            base = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
        wan = WAN_13B
        block, (height, width), num_frames, pixels = 20, (480, 832), 16, 256 * 28 * 28
    base = base.to(device)
    dit = (
        build_tiny_transformer(
            wan["num_layers"], wan["dim"], wan["num_heads"], wan["ffn_dim"], wan["text_dim"], 256, gen
        )
        .to(device, dtype)
        .eval()
    )
    vae = build_tiny_vae(wan["vae_base_dim"], gen).to(device, dtype).eval()
    for model in (dit, vae):  # as diffusers' from_pretrained(torch_dtype=...) does: some modules stay fp32
        keep = set(getattr(model, "_keep_in_fp32_modules", None) or ())
        for name, module in model.named_modules():
            if keep & set(name.split(".")):
                module.float()
    mean, std = torch.randn(16, generator=gen) * 0.5, torch.rand(16, generator=gen) + 0.5
    context = torch.randn(1, wan["text_dim"], generator=gen)
    sim = WanWorldSimulator(dit, vae, mean, std, context, block=block, height=height, width=width, stand_in=True)
    processor = Vega3DProcessor.from_pretrained(qwen_dir, video_min_pixels=56 * 56, video_max_pixels=pixels)
    return base, processor, sim, wan["dim"], (height, width), num_frames


def make_batch(processor, num_frames, height, width, device):
    from vega3d.mllm.data import collate, to_device
    from vega3d.mllm.processing import llava_to_messages

    frames = np.random.default_rng(0).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    item = {"id": "bench", **processor.video_inputs(frames)}
    msgs = llava_to_messages(
        [
            {"from": "human", "value": "<video>\nHow far is the chair from the table, in meters?"},
            {"from": "gpt", "value": "About 1.5 meters."},
        ]
    )
    item.update(processor.encode(msgs, item["video_grid_thw"]))  # real size: ids remapped in main()
    item["second_per_grid_ts"] = 1.0
    batch = collate([item], processor.tokenizer.pad_token_id)
    batch["video_frames"] = [torch.from_numpy(frames)]
    return to_device(batch, device), frames


def count_real_size(out: str) -> None:
    """Trainable parameters and checkpoint bytes at the real sizes (Qwen2.5-VL-7B, Wan 1.3B
    width 1536), per training mode — built on the meta device, so it runs anywhere."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from vega3d.mllm.config import Vega3DConfig
    from vega3d.mllm.model import Vega3DQwen

    rows = []
    for name, kw in (
        ("fusion only", dict(llm="frozen", train_projector=False)),
        ("fusion + projector", dict(llm="frozen")),
        ("+ LoRA r=64", dict(llm="lora", lora={"r": 64, "alpha": 128})),
        ("+ full LLM", dict(llm="full")),
        ("+ full LLM + vision", dict(llm="full", train_vision=True)),
    ):
        with torch.device("meta"):
            base = Qwen2_5_VLForConditionalGeneration._from_config(
                Qwen2_5_VLConfig(**copy.deepcopy(QWEN25VL_7B)), dtype=torch.bfloat16
            )
            model = Vega3DQwen(base, Vega3DConfig(base_model="(meta)", generative_dim=WAN_13B["dim"], **kw))
        params = [p for p in model.parameters() if p.requires_grad]
        rows.append(
            {
                "mode": name,
                "trainable_params": sum(p.numel() for p in params),
                "checkpoint_bytes": sum(p.numel() * p.element_size() for p in params),
            }
        )
    Path(out).write_text(json.dumps(rows, indent=2))
    print(f"{'trainable parts':<24}{'parameters':>16}{'checkpoint':>14}")
    for r in rows:
        print(f"{r['mode']:<24}{r['trainable_params']:>16,}{r['checkpoint_bytes'] / 2**20:>11.1f} MiB")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--size",
        choices=["tiny", "real", "count"],
        default="tiny",
        help="count: real-size trainable parameters / checkpoint sizes only (meta device, any machine)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="bench_mllm.json")
    args = p.parse_args()
    if args.size == "count":
        return count_real_size(args.out)
    device = torch.device(args.device)
    if args.size == "real" and device.type != "cuda":
        raise SystemExit("--size real needs a GPU (about 40 GB for LoRA + bf16 at 16 frames)")
    dtype = torch.bfloat16 if args.size == "real" else torch.float32

    from vega3d.mllm.config import Vega3DConfig
    from vega3d.mllm.model import Vega3DQwen

    def setup():
        with tempfile.TemporaryDirectory() as tmp:
            return build(args.size, Path(tmp), device, dtype)

    base, processor, sim, gen_dim, (h, w), n = setup()
    cfg = base.config
    batch, frames = make_batch(processor, n, h, w, device)
    if args.size == "real":  # the toy tokenizer's vision-token ids -> the real model's ids
        tok = processor.tokenizer
        remap = {
            tok.convert_tokens_to_ids(t): getattr(cfg, k)
            for t, k in (
                ("<|video_pad|>", "video_token_id"),
                ("<|vision_start|>", "vision_start_token_id"),
                ("<|vision_end|>", "vision_end_token_id"),
                ("<|image_pad|>", "image_token_id"),
            )
        }
        for key in ("input_ids", "labels"):
            x, orig = batch[key], batch[key].clone()
            for a, b in remap.items():
                x[orig == a] = b

    results = {
        "size": args.size,
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "num_frames": n,
        "frame_hw": [h, w],
        "video_grid_thw": batch["video_grid_thw"].tolist(),
        "sequence_length": int(batch["input_ids"].shape[1]),
    }
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)

    with Peak(device) as mem:
        t_sim = best_seconds(lambda: sim.extract(batch["video_frames"][0]), device, args.repeats)
    results["simulator"] = {"seconds": t_sim, "peak_bytes": mem.peak_bytes}

    for name, generative in (("baseline", False), ("vega3d", True)):
        if base is None:  # LoRA is injected in place: a fresh base for each variant
            base, _, sim, *_ = setup()
        model = Vega3DQwen(
            base,
            Vega3DConfig(
                base_model="(random weights)",
                generative=generative,
                generative_dim=gen_dim,
                llm="lora",
                lora={"r": 64, "alpha": 128, "dropout": 0.0},
            ),
        ).to(device)
        model.attach_simulator(sim if generative else None)
        model.gradient_checkpointing_enable()
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        inputs = dict(batch)
        if not generative:
            inputs.pop("video_frames")

        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.size == "real"):
                out = model(**inputs)
            out.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        with Peak(device) as mem:
            t = best_seconds(step, device, args.repeats)
        results[name] = {
            "step_seconds": t,
            "peak_bytes": mem.peak_bytes,
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        }
        model = opt = base = None  # free before the next variant
        if device.type == "cuda":
            torch.cuda.empty_cache()

    results["ratio_step_time_vega3d_over_baseline"] = (
        results["vega3d"]["step_seconds"] / results["baseline"]["step_seconds"]
    )
    Path(args.out).write_text(json.dumps(results, indent=2))

    def gib(b):
        return "n/a (CPU)" if b is None else f"{b / 2**30:.2f} GiB"

    print(
        f"VEGA-3D training step, size={args.size}, device={results.get('gpu', device)}, {n} frames {h}x{w}, "
        f"{results['sequence_length']} tokens"
    )
    print(f"{'variant':<12}{'step (s)':>12}{'peak memory':>16}{'trainable':>14}")
    for name in ("baseline", "vega3d"):
        r = results[name]
        print(f"{name:<12}{r['step_seconds']:>12.4f}{gib(r['peak_bytes']):>16}{r['trainable_params']:>14,}")
    print(f"{'simulator':<12}{t_sim:>12.4f}{gib(results['simulator']['peak_bytes']):>16}")
    print(f"vega3d / baseline step time: {results['ratio_step_time_vega3d_over_baseline']:.2f}x   -> {args.out}")


if __name__ == "__main__":
    main()
