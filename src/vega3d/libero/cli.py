"""``vega3d libero-eval --policy {random,zero,CKPT} --suite SUITE [--tasks] [--trials] [--seeds] --out DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

from vega3d.libero.protocol import CAMERA_SIZE, DEFAULT_SEED, ENV_SEED, INIT_STATES_PER_TASK, MAX_STEPS, SUITES


def register(subparsers) -> None:
    """Add the ``libero-eval`` subcommand."""
    parser = subparsers.add_parser(
        "libero-eval",
        help="evaluate a policy on a LIBERO suite (OpenVLA-OFT protocol, headless, resumable)",
        description="Run the OpenVLA-OFT LIBERO protocol headless in worker processes: per task and seed, episodes "
        "0..trials-1 from the fixed initial states, 10 settle steps, the suite's step limit "
        f"({', '.join(f'{s} {n}' for s, n in MAX_STEPS.items())}), open-loop action chunks. Writes "
        "OUT/episodes.jsonl (one line per finished episode; rerun the same command to resume), an MP4 per "
        "episode, and OUT/results.json + results.txt (per task and suite, Wilson 95% intervals, spread "
        "across seeds). Needs the 'libero' extra. See docs/libero.md.",
    )
    parser.add_argument("--policy", required=True, help="random, zero, module:function, or a checkpoint folder")
    parser.add_argument("--suite", required=True, choices=SUITES)
    parser.add_argument("--tasks", type=int, nargs="+", default=None, metavar="ID", help="task ids 0..9 (default: all)")
    parser.add_argument("--trials", type=int, default=INIT_STATES_PER_TASK,
                        help=f"episodes per task and seed, using initial states 0..N-1 (default {INIT_STATES_PER_TASK})")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[DEFAULT_SEED], metavar="SEED",
                        help=f"run seeds (default {DEFAULT_SEED}; the paper averages 3)")  # fmt: skip
    parser.add_argument("--max-steps", type=int, default=None,
                        help="policy steps per episode (default: the suite's protocol value; smaller = smoke run)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="simulator processes (default 1)")
    parser.add_argument("--video", action=argparse.BooleanOptionalAction, default=True, help="an MP4 per episode")
    parser.add_argument("--gl", choices=("auto", "egl", "osmesa"), default="auto", help="headless GL backend")
    parser.add_argument("--env-seed", default=str(ENV_SEED), metavar="N|run",
                        help=f"env.seed() per task env: {ENV_SEED} as OpenVLA-OFT (default), or 'run' for each run seed")  # fmt: skip
    parser.add_argument("--camera-size", type=int, default=CAMERA_SIZE,
                        help=f"rendered camera side (protocol: {CAMERA_SIZE}; smaller = faster smoke runs)")  # fmt: skip
    parser.add_argument("--retry-errors", action="store_true", help="rerun episodes that ended in an error")
    parser.add_argument("--record", type=Path, default=None, metavar="DIR",
                        help="also write every episode into a LeRobot-format (v3.0) dataset folder")  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, help="output folder (episodes.jsonl, videos/, results)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vega3d.errors import Vega3DError
    from vega3d.libero.runner import evaluate, make_config

    if args.env_seed == "run":
        env_seed = None
    else:
        try:
            env_seed = int(args.env_seed)
        except ValueError:
            raise Vega3DError(f"--env-seed {args.env_seed!r}; expected an integer or 'run'") from None
    config = make_config(
        suite=args.suite, policy=args.policy, tasks=args.tasks, trials=args.trials, seeds=args.seeds,
        max_steps=args.max_steps, workers=args.workers, video=args.video, gl=args.gl, env_seed=env_seed,
        camera_size=args.camera_size, retry_errors=args.retry_errors,
        record=str(args.record) if args.record else None,
    )  # fmt: skip
    results = evaluate(config, args.out)
    print(results["table"])
    print(f"wrote {args.out / 'results.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m vega3d.libero.cli libero-eval ...`` (the same command without the ``vega3d`` entry point)."""
    import sys

    from vega3d.errors import Vega3DError

    parser = argparse.ArgumentParser(prog="vega3d")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Vega3DError as err:
        print(f"vega3d {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
