"""``vega3d extract`` (inputs -> feature store) and ``vega3d store-info`` (what a store holds)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vega3d.errors import Vega3DError


def _frame_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated frame indices like 0,8,16, got {text!r}") from None


def register(subparsers) -> None:
    """Add the ``extract`` and ``store-info`` subcommands."""
    p = subparsers.add_parser(
        "extract",
        help="extract Wan2.1 features of scans/videos/frame folders into a feature store",
        description="Extract world-simulator features of each input into a feature store (resumable: rerun the same "
        "command to finish an interrupted run; distributed: launch with torchrun). Inputs are scan folders "
        "(ScanNet SensReader or posed_images), video files, folders of images, or folders holding those. "
        "Exit code 1 when some items failed (listed in the summary); no store is written when all failed.",
    )
    _input_arguments(p)
    _simulator_arguments(p)
    _storage_arguments(p)
    p.add_argument("--fail-fast", action="store_true", help="stop at the first item that fails")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_extract)

    q = subparsers.add_parser(
        "store-info",
        help="summarise a feature store (config, items, size); --verify checksums",
        description="Print a feature store's extraction config, item count and size. "
        "With --verify, check every shard's sha256 (exit 1 if any is corrupted).",
    )
    q.add_argument("store", metavar="STORE")
    q.add_argument("--verify", action="store_true", help="check every shard's sha256")
    q.add_argument("--full", action="store_true", help="print the whole extraction config")
    q.set_defaults(func=run_store_info)


def _input_arguments(p) -> None:
    """What is read: the inputs, their kind and the frames of each."""
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="scan folder, video file, image folder, or a folder of them"
    )
    p.add_argument(
        "--input-kind",
        default="auto",
        choices=["auto", "scan", "video", "frames"],
        help="treat every input as this kind (default: detect)",
    )
    frames = p.add_mutually_exclusive_group()
    frames.add_argument("--num-frames", type=int, default=32, help="frames per item, chosen uniformly (default 32)")
    frames.add_argument(
        "--frames",
        type=_frame_list,
        default=None,
        metavar="I,J,...",
        help="explicit frame indices for every item (scan: frame ids; video/images: 0-based positions)",
    )


def _simulator_arguments(p) -> None:
    """The world simulator and the settings of its features (recorded in the store's config)."""
    p.add_argument("--model", required=True, metavar="WAN_DIR", help="Wan2.1-T2V folder (diffusers or original layout)")
    p.add_argument("--height", type=int, default=480, help="simulator input height in pixels (default 480)")
    p.add_argument("--width", type=int, default=832, help="simulator input width in pixels (default 832)")
    p.add_argument("--block", type=int, default=20, help="0-based DiT block whose output is the feature (default 20)")
    p.add_argument("--timestep", type=float, default=300, help="noise timestep (default 300)")
    p.add_argument("--shift", type=float, default=5.0, help="flow shift (default 5.0)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument(
        "--prompt-embedding",
        default=None,
        metavar="FILE",
        help="safetensors with tensor 'prompt_embedding' (as `vega3d export-prompt` writes)",
    )
    dtypes = ["float32", "bfloat16", "float16"]
    p.add_argument(
        "--dtype", default=None, choices=dtypes, help="DiT compute dtype (default bfloat16 on CUDA, float32 on CPU)"
    )
    p.add_argument(
        "--vae-dtype",
        default="float32",
        choices=dtypes,
        help="VAE compute dtype (default float32 whatever --dtype is, as Wan2.1's reference)",
    )
    p.add_argument(
        "--device",
        default=None,
        help="torch device (default: cuda if available, else cpu; under torchrun cuda:LOCAL_RANK)",
    )
    p.add_argument(
        "--batch-frames",
        type=int,
        default=None,
        help="frames per DiT call (recorded in the store; default: from the model's memory need at this size)",
    )
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic GPU kernels (process-wide: torch.use_deterministic_algorithms, CUBLAS_WORKSPACE_CONFIG)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="compute the empty-prompt context with the text encoder without the prompt-context cache "
        "($VEGA3D_CACHE, default ~/.cache/vega3d)",
    )
    p.add_argument(
        "--clip",
        action="store_true",
        help="clip mode: each item's 1 + 4k frames encoded as one video, one row per latent frame "
        "(use e.g. --num-frames 33)",
    )


def _storage_arguments(p) -> None:
    """Where and how the features are stored."""
    p.add_argument("--out", required=True, metavar="STORE", help="feature store folder (created or resumed)")
    p.add_argument(
        "--precision", default="bf16", choices=["bf16", "fp16", "fp32"], help="storage precision (default bf16)"
    )
    p.add_argument(
        "--pool",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="resample features to an H x W grid at write time (e.g. the semantic token grid)",
    )


def _setup_distributed():
    """Join the process group when launched by torchrun (gloo: only small objects and
    barriers are exchanged); returns the local rank, or None when not distributed."""
    import os

    import torch.distributed as dist

    if not dist.is_torchelastic_launched():
        return None
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return int(os.environ.get("LOCAL_RANK", "0"))


def run_extract(args) -> int:
    import torch.distributed as dist

    from vega3d.standin import notice, stand_in_parts
    from vega3d.store.extract import extract_to_store
    from vega3d.store.inputs import check_selection, discover_inputs

    # the command line is checked before the (slow) model load
    items = discover_inputs(args.inputs, args.input_kind)
    num_frames = None if args.frames else args.num_frames
    check_selection(num_frames, args.frames)
    n = len(args.frames) if args.frames else num_frames
    if args.clip and (n - 1) % 4:
        raise Vega3DError(f"--clip: Wan's VAE takes 1 + 4k frames (1, 5, 9, ..., 33), got {n}")
    local_rank = _setup_distributed()
    try:
        extractor = _extractor(args, local_rank)
        summary = extract_to_store(
            items,
            extractor,
            args.out,
            num_frames=num_frames,
            frames=args.frames,
            precision=args.precision,
            pool=args.pool,
            fail_fast=args.fail_fast,
            progress=not args.no_progress,
        )
        if dist.is_initialized() and dist.get_rank() != 0:
            return 1 if summary.failed else 0
    finally:
        if local_rank is not None and dist.is_initialized():
            dist.destroy_process_group()
    if stand_in_parts(simulator=extractor.config):
        print(notice(["the Wan simulator"], "Its features are for testing only."), file=sys.stderr)
    written = (Path(args.out) / "store.json").is_file()
    print(f"vega3d extract -> {args.out}" + ("" if written else " (not written: no item succeeded)"))
    print(summary.table())
    return 1 if summary.failed else 0


def _extractor(args, local_rank: int | None):
    """The simulator the arguments describe (wrapped for clip mode), on this process's device."""
    import torch

    from vega3d.simulator import WanWorldSimulator

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and local_rank is not None:
        device = f"cuda:{local_rank}"
    sim = WanWorldSimulator.from_pretrained(
        args.model,
        timestep=args.timestep,
        shift=args.shift,
        block=args.block,
        height=args.height,
        width=args.width,
        seed=args.seed,
        dtype=args.dtype or ("bfloat16" if device.startswith("cuda") else "float32"),
        vae_dtype=args.vae_dtype,
        device=device,
        prompt_embedding=args.prompt_embedding,
        batch_frames=args.batch_frames,
        deterministic=args.deterministic,
        prompt_cache=not args.no_cache,
    )
    if args.clip:
        from vega3d.store.clip import ClipExtractor

        return ClipExtractor(sim)
    return sim


def run_store_info(args) -> int:
    import json

    from vega3d.standin import stand_in_parts
    from vega3d.store import FeatureStore

    store = FeatureStore(args.store, verify=True)
    entries = store.entries()
    storage = store.config["storage"]
    print(f"feature store {store.path}")
    if stand_in_parts(extraction=store.extraction_config):
        print(
            "  STAND-IN: extracted with a small random-weight stand-in model, not Wan2.1 — "
            "these features are for testing only"
        )
    print(
        f"  items: {len(store)}  entries: {len(entries)}  size: {store.total_bytes() / 2**20:.2f} MiB"
        + (f"  ({store.total_bytes() / len(entries) / 2**20:.3f} MiB per entry)" if entries else "")
    )
    print(f"  storage: precision {storage['precision']}, pool {storage['pool']}")
    if entries:
        print(f"  feature shape (first entry): {entries[0]['shape']} {entries[0]['dtype']}")
    extraction = store.extraction_config
    if args.full:
        print(f"  extraction: {json.dumps(extraction, indent=1, sort_keys=True)}")
    else:
        scalars = {k: v for k, v in sorted(extraction.items()) if not isinstance(v, (dict, list))}
        model = extraction.get("model")
        if isinstance(model, dict):
            scalars.update({f"model.{k}": model[k] for k in ("weights_hash", "layout", "path") if k in model})
        print("  extraction: " + ", ".join(f"{k}={v}" for k, v in scalars.items()) + "  (--full for all)")
    if args.verify:
        problems = store.verify_all()
        for p in problems:
            print(f"  CORRUPTED: {p}")
        print(f"  verified {len(entries)} shards: {len(problems)} corrupted")
        return 1 if problems else 0
    return 0
