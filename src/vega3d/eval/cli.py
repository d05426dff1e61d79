"""``vega3d eval BENCH --pred preds.jsonl --gt PATH [--out result.json]`` (and ``vega3d eval-model``, see
:mod:`vega3d.eval.run`)."""

from __future__ import annotations

import argparse
import importlib
import json
import math
from pathlib import Path

from vega3d.eval import BENCHMARKS

CAPTION_BENCHMARKS = ("scanqa", "scan2cap")


def register(subparsers) -> None:
    """Add the ``eval`` subcommand."""
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

    from vega3d.eval.run import register as register_runner  # `vega3d eval-model`: checkpoint -> table

    register_runner(subparsers)


def run(args: argparse.Namespace) -> int:
    from vega3d.errors import Vega3DError
    from vega3d.eval import captions
    from vega3d.eval.table import render_table

    module = importlib.import_module(f"vega3d.eval.{args.benchmark}")
    kwargs = {}
    if args.ptb_tokenize:
        if args.benchmark not in CAPTION_BENCHMARKS:
            raise Vega3DError(f"--ptb-tokenize applies to {CAPTION_BENCHMARKS}, not {args.benchmark!r}")
        kwargs["ptb_tokenize"] = True
    if args.benchmark in CAPTION_BENCHMARKS:
        scorer = captions.CaptionScorer()
        try:
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
        record = {"predictions": str(args.pred), "annotations": str(args.gt), **result}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(_json_safe(record), indent=2, allow_nan=False) + "\n")
        tmp.replace(args.out)
        print(f"wrote {args.out}")
    return 0


def _json_safe(value):
    """NaN (a split without items) becomes null in the JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
