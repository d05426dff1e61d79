"""VEGA-3D on Video-3D LLM, one training step: the generative branch vs the baseline (Video-3D LLM).

Both models train on the same batch (one ScanRefer sample: InfoNCE; one ScanQA sample: LM loss)
with the Wan features read from a feature store, as ``configs/video3d_llm_paper.yaml`` trains:

- ``vega3d``: features from the store → area-aligned to the 14x14 tokens → projector → fusion;
- ``baseline``: the same model built with ``generative: false`` (no store read, no branch).

Per step: forward, backward, AdamW; the store read is timed inside the vega3d step (it is part of
the data path). Steps alternate between the two models after a warm-up; medians, and the ratio.

Sizes:
- ``--size tiny`` (default; CPU is fine): the stand-ins of the tests (``write_tiny_video3d_setup``):
  LLaVA-Video at width 64, SigLIP at width 32, the Wan stand-in's features (32 channels), 2 frames.
- ``--size real`` (needs a GPU, ~40 GB): random weights at LLaVA-Video-7B-Qwen2's sizes (SigLIP
  so400m 26 layers, Qwen2-7B), bf16, LoRA r=64 on the LLM (full fine-tuning needs ZeRO-3), 32 frames,
  store features of Wan2.1-1.3B's width (1536) pooled to 28x28, gradient checkpointing.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_video3d_llm.py --size tiny --out bench_video3d_llm_tiny.json
    python benchmarks/bench_video3d_llm.py --size real --device cuda --out bench_video3d_llm_real.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def tiny_models(root: Path, device: str):
    """(vega3d model, baseline model, batch items factory, store) on the tiny stand-ins."""
    from vega3d.mllm.video3d_llm.config import Video3DLLMConfig
    from vega3d.mllm.video3d_llm.model import Video3DLLM
    from vega3d.standin.llava_video import write_tiny_video3d_setup
    from vega3d.store import FeatureStore

    if not (root / "store").is_dir():
        write_tiny_video3d_setup(root)
    models = {
        name: Video3DLLM.from_config(
            Video3DLLMConfig(base_model=str(root / "llava_video"), generative=name == "vega3d", generative_dim=32)
        ).to(device)
        for name in ("vega3d", "baseline")
    }
    return models, root / "data", FeatureStore(root / "store"), 2


def real_models(device: str):
    """Random-weight models at the real sizes (no files): the stock LLaVA-OneVision built on the device."""
    from transformers import LlavaOnevisionForConditionalGeneration

    from vega3d.mllm.config import LoraSettings
    from vega3d.mllm.video3d_llm.config import Video3DLLMConfig
    from vega3d.mllm.video3d_llm.model import Video3DLLM
    from vega3d.standin.llava_video import QWEN2_CHAT_TEMPLATE, QWEN2_SPECIAL_TOKENS, real_llava_video_config
    from vega3d.standin.qwen import train_tokenizer

    tokenizer, _, _ = train_tokenizer(300, QWEN2_SPECIAL_TOKENS, QWEN2_CHAT_TEMPLATE)
    tokenizer.add_tokens(["<ground>", "<coord>"])
    tokens = {"rows": 152064, "ground_token_id": tokenizer.convert_tokens_to_ids("<ground>"),
              "coord_token_id": tokenizer.convert_tokens_to_ids("<coord>"), "added": True}  # fmt: skip
    models = {}
    for name in ("vega3d", "baseline"):
        with torch.device(device):
            base = LlavaOnevisionForConditionalGeneration(real_llava_video_config()).to(torch.bfloat16)
        cfg = Video3DLLMConfig(base_model="(random weights)", generative=name == "vega3d", llm="lora",
                               lora=LoraSettings(r=64, alpha=128), train_vision=False, tokens=tokens)  # fmt: skip
        model = Video3DLLM(base, tokenizer, cfg).to(device)
        model.gradient_checkpointing_enable()
        models[name] = model
    return models


def batch_for(model, data_root: Path, store, frames: int, device: str):
    """One ScanRefer + one ScanQA train sample of the tiny dataset, features from ``store``."""
    from vega3d.mllm.video3d_llm.data import SceneCache, collate, sample_item, to_device
    from vega3d.video3d import Video3DData, read_samples

    data = Video3DData(data_root)
    samples = [
        read_samples(data_root / "processed" / f"{n}_train_llava_style.json")[0] for n in ("scanrefer_vg", "scanqa")
    ]
    video = samples[0].video
    cache = SceneCache(data, "resize", store if model.config.generative else None)
    scene = cache.get(video, data.choose_frames(video, frames, "uniform"))
    boxes = data.proposals(video, "train")
    items = [sample_item(s, scene, model.tokenizer, instruction=None, boxes=boxes) for s in samples]
    return to_device(collate(items, model.tokenizer.pad_token_id), device)


def real_batch(model, frames: int, device: str):
    """Random pixels / positions / 28x28 store-shaped features (bf16), one grounding + one QA sample."""
    from vega3d.mllm.video3d_llm.data import collate, encode, to_device

    g = torch.Generator().manual_seed(0)
    items = []
    for answer in ("<ground>", "There are three chairs."):
        ids, labels = encode(model.tokenizer, "<image> How many chairs are in the room?", frames, answer)
        cells = torch.zeros(50, frames, 27, 27, dtype=torch.bool)
        cells[:, :, 5:9, 5:9] = True
        items.append({"id": answer, "input_ids": ids, "labels": labels,
                      "pixel_values": torch.randn(frames, 3, 384, 384, generator=g),
                      "positions": torch.randint(0, 100, (frames, 14, 14, 3), generator=g).float(), "aspect": 4 / 3,
                      "features": torch.randn(frames, 28, 28, 1536, generator=g).to(torch.bfloat16), "frames": None,
                      "coord": None, "objects": (cells, torch.zeros(50, 3)) if answer == "<ground>" else None,
                      "positives": [0] if answer == "<ground>" else None})  # fmt: skip
    return to_device(collate(items, model.tokenizer.pad_token_id), device)


def step(model, optimizer, batch, store_read=None) -> float:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    start = time.perf_counter()
    if store_read is not None:
        batch = {**batch, "gen_features": store_read()}
    with torch.autocast(batch["input_ids"].device.type, dtype=torch.bfloat16,
                        enabled=batch["input_ids"].device.type == "cuda"):  # fmt: skip
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("tiny", "real"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--setup", help="tiny: an existing write_tiny_video3d_setup folder (else a temporary one)")
    parser.add_argument("--out", type=Path, default=Path("bench_video3d_llm.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if args.size == "tiny":
            models, data_root, store, frames = tiny_models(Path(args.setup or tmp), args.device)
            batches = {n: batch_for(m, data_root, store, frames, args.device) for n, m in models.items()}
            video = "scene0000_00"
            from vega3d.video3d import Video3DData

            chosen = Video3DData(data_root).choose_frames(f"scannet/{video}", frames, "uniform")
            reads = {"vega3d": lambda: [store.get(video, chosen)[0].to(args.device)] * 2, "baseline": None}
        else:
            models = real_models(args.device)
            batches = {n: real_batch(m, 32, args.device) for n, m in models.items()}
            feats = batches["vega3d"]["gen_features"]
            reads = {"vega3d": lambda: feats, "baseline": None}
        models = {n: m.train() for n, m in models.items()}
        optims = {
            n: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-5) for n, m in models.items()
        }
        times = {n: [] for n in models}
        for i in range(args.steps + 1):  # alternate; the first of each is the warm-up
            for n in ("vega3d", "baseline"):
                t = step(models[n], optims[n], batches[n], reads[n])
                if i:
                    times[n].append(t)
    med = {n: statistics.median(v) for n, v in times.items()}
    result = {"size": args.size, "device": args.device, "steps": args.steps, "threads": torch.get_num_threads(),
              "median_s": med, "all_s": times, "ratio_vega3d_over_baseline": med["vega3d"] / med["baseline"]}  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2))
    print(f"{'model':10s} {'median step (s)':>16s}")
    for n in ("baseline", "vega3d"):
        print(f"{n:10s} {med[n]:16.3f}")
    print(f"ratio vega3d / baseline: {result['ratio_vega3d_over_baseline']:.3f}  (wrote {args.out})")


if __name__ == "__main__":
    main()
