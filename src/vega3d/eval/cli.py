"""``vega3d eval BENCH --pred preds.jsonl --gt PATH [--out result.json]`` (score predictions) and
``vega3d eval-model BENCH --model CHECKPOINT ...`` (answer with a checkpoint, then score:
:func:`vega3d.eval.run.run_benchmark`)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from vega3d.errors import Vega3DError
from vega3d.eval import BENCHMARKS
from vega3d.eval.runners.questions import TEXT_BENCHMARKS

CAPTION_BENCHMARKS = ("scanqa", "scan2cap")


def register(subparsers) -> None:
    """Add the ``eval`` and ``eval-model`` subcommands."""
    parser = subparsers.add_parser(
        "eval",
        help="score a predictions JSONL file against official benchmark annotations",
        description='Score predictions (JSONL, one {"id": ..., ...} per line; fields per benchmark in docs/eval.md) '
        "against official annotations; prints a table in the paper's column order (x100) and writes JSON.",
    )
    parser.add_argument("benchmark", choices=BENCHMARKS, metavar="BENCH", help=f"one of {', '.join(BENCHMARKS)}")
    parser.add_argument("--pred", required=True, type=Path, help="predictions JSONL")
    parser.add_argument("--gt", required=True, type=Path, help="annotation file (official / Video-3D LLM format)")
    parser.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    parser.add_argument(
        "--ptb-tokenize",
        action="store_true",
        help="scanqa/scan2cap: run the COCO PTB tokenizer before the caption metrics",
    )
    parser.add_argument("--no-paper", action="store_true", help="do not print the paper's published rows")
    parser.set_defaults(func=run)
    _register_eval_model(subparsers)


def run(args: argparse.Namespace) -> int:
    from vega3d.eval import captions
    from vega3d.eval.table import render_table
    from vega3d.files import write_json

    module = importlib.import_module(f"vega3d.eval.{args.benchmark}")
    if args.ptb_tokenize and args.benchmark not in CAPTION_BENCHMARKS:
        raise Vega3DError(f"--ptb-tokenize applies to {CAPTION_BENCHMARKS}, not {args.benchmark!r}")
    if args.benchmark in CAPTION_BENCHMARKS:
        scorer = captions.CaptionScorer()
        try:
            kwargs = {"ptb_tokenize": True} if args.ptb_tokenize else {}
            result = module.evaluate(args.pred, args.gt, scorer=scorer, **kwargs)
        finally:
            scorer.close()
    else:
        result = module.evaluate(args.pred, args.gt)

    counts = result["counts"]
    line = f"{args.benchmark}: scored {counts['scored']} of {counts['expected']} expected items"
    if "detected@0.5" in counts:
        line += f"; {counts['detected@0.5']} objects detected at IoU >= 0.5"
    if "tasks_present" in counts and counts["tasks_present"] != counts["tasks_total"]:
        line += f"; only {counts['tasks_present']} of {counts['tasks_total']} tasks present, Avg. is over those"
    print(line)
    columns, rows = module.table_rows(result)
    print(render_table(args.benchmark, columns, rows, paper=not args.no_paper))
    if args.out is not None:
        write_json(args.out, {"predictions": str(args.pred), "annotations": str(args.gt), **result})
        print(f"wrote {args.out}")
    return 0


# ------------------------------------------------------------------------------------------ eval-model
def _register_eval_model(subparsers) -> None:
    p = subparsers.add_parser(
        "eval-model",
        help="answer a benchmark with a VEGA-3D checkpoint, then score it (predictions.jsonl + table)",
        description="Answer every question of a text-answer benchmark (vsibench, scanqa, sqa3d) with a VEGA-3D "
        "checkpoint, write OUT/predictions.jsonl (resumable), score it like `vega3d eval` and write OUT/result.json.",
    )
    _eval_model_questions(p)
    _eval_model_loading(p)
    p.add_argument("--no-paper", action="store_true", help="do not print the paper's published rows")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_model)


def _eval_model_questions(p) -> None:
    """eval-model's arguments: what is answered, how, and where it goes."""
    from vega3d.mllm.cli import add_frames_as

    p.add_argument("benchmark", choices=BENCHMARKS, metavar="BENCH", help=f"one of {', '.join(TEXT_BENCHMARKS)}")
    p.add_argument("--model", required=True, type=Path, help="checkpoint folder (vega3d train / save_pretrained)")
    p.add_argument("--gt", required=True, type=Path, help="annotation file (official / Video-3D LLM format)")
    p.add_argument(
        "--media",
        required=True,
        type=Path,
        help="vsibench: folder with <dataset>/<scene>.mp4; scanqa/sqa3d: folder with <scene_id>/ scans; "
        "Video-3D LLM checkpoints (all five 3D benchmarks): the release's data/ folder",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (predictions.jsonl, run.json, result.json)")
    p.add_argument("--num-frames", type=int, help="frames sampled uniformly (default: as in training, else 32)")
    add_frames_as(p)
    p.add_argument(
        "--batch-size",
        type=int,
        default=4,
        help="questions answered per generate call (default 4; answers do not depend on it)",
    )
    p.add_argument("--limit", type=int, help="only the first N questions of the annotation file")
    p.add_argument("--skip-missing", action="store_true", help="skip (and count) questions whose media is missing")
    p.add_argument("--max-new-tokens", type=int, default=128, help="longest answer in tokens (default 128)")
    instruction = p.add_mutually_exclusive_group()
    instruction.add_argument("--instruction", help="text put on a line before every prompt (default: none)")
    instruction.add_argument(
        "--spatial-instruction",
        action="store_true",
        help="use Video-3D LLM's training-time spatial instruction as --instruction",
    )


def _eval_model_loading(p) -> None:
    """eval-model's arguments: how the checkpoint, its base and its simulator (or features) load."""
    p.add_argument("--base", help="Qwen2.5-VL folder (default: the one the checkpoint records)")
    p.add_argument("--simulator", help="Wan2.1 folder (default: the one the checkpoint records)")
    p.add_argument(
        "--device",
        help="torch device (default: accelerate's - each process's GPU under "
        "`accelerate launch`, else cuda if available, else cpu)",
    )
    p.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="model dtype (default float32)"
    )
    p.add_argument("--baseline", action="store_true", help="generative branch off (the paired baseline)")
    p.add_argument(
        "--feature-cache-bytes",
        type=int,
        default=None,
        help="RAM for the simulator's features, each video's computed once (default 4 GiB; 0: no RAM cache)",
    )
    p.add_argument(
        "--feature-cache-dir",
        help="disk tier of that cache: feature stores a later eval-model run reads instead of running the simulator",
    )
    p.add_argument(
        "--feature-store",
        help="Video-3D LLM checkpoints: Wan features from this store (vega3d extract) instead of the simulator",
    )


def run_model(args: argparse.Namespace) -> int:
    """``vega3d eval-model``: the edges are checked in the order a user fixes them — arguments,
    checkpoint, annotations, media — all before the (slow) model load. A checkpoint of the Video-3D
    LLM family (or a LLaVA-Video / Video-3D LLM folder) runs that family's runner, which answers all
    five Table-1 benchmarks (:mod:`vega3d.mllm.video3d_llm.evaluate`)."""
    from vega3d.mllm.video3d_llm.model import is_video3d_checkpoint

    if is_video3d_checkpoint(args.model):
        from vega3d.mllm.video3d_llm.cli import run_eval_model

        return run_eval_model(args)
    from vega3d.eval.run import SPATIAL_INSTRUCTION, run_benchmark
    from vega3d.eval.runners.questions import check_arguments, prepare
    from vega3d.mllm.checkpoint import read_checkpoint_config

    counts = {name: getattr(args, name) for name in ("num_frames", "batch_size", "limit", "max_new_tokens")}
    check_arguments(args.benchmark, **counts)
    instruction = SPATIAL_INSTRUCTION if args.spatial_instruction else args.instruction
    read_checkpoint_config(args.model)
    plan = prepare(
        args.benchmark, args.gt, args.media, limit=args.limit, skip_missing=args.skip_missing, instruction=instruction
    )
    run_benchmark(
        args.benchmark,
        _answerer(args),
        args.gt,
        args.media,
        args.out,
        batch_size=args.batch_size,
        limit=args.limit,
        skip_missing=args.skip_missing,
        max_new_tokens=args.max_new_tokens,
        instruction=instruction,
        generative=False if args.baseline else None,
        model={
            "checkpoint": str(args.model.resolve()),
            "base": args.base,
            "simulator": args.simulator,
            "dtype": args.dtype,
        },  # fmt: skip
        paper=not args.no_paper,
        progress=not args.no_progress,
        plan=plan,
    )
    return 0


def _answerer(args: argparse.Namespace):
    """The checkpoint loaded on this process's device (joins the process group under
    ``accelerate launch`` / torchrun)."""
    from accelerate import PartialState

    from vega3d.mllm.infer import Answerer

    state = PartialState(cpu=args.device == "cpu")
    if state.num_processes > 1 and args.device not in (None, "cpu"):
        raise Vega3DError(
            f"--device {args.device}: with {state.num_processes} processes each uses its own device; "
            f"leave --device out (or give cpu)"
        )
    return Answerer.from_checkpoint(
        args.model,
        base=args.base,
        simulator=args.simulator,
        device=args.device or str(state.device),
        dtype=args.dtype,
        num_frames=args.num_frames,
        **({} if args.feature_cache_bytes is None else {"feature_cache_bytes": args.feature_cache_bytes}),
        feature_cache_dir=args.feature_cache_dir,
        frames_as=args.frames_as,
    )
