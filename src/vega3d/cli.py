"""The ``vega3d`` command: one subcommand per job.

Each subpackage that offers a job has a small ``cli`` module with
``register(subparsers)``, which adds its subcommands and sets ``func`` on them.
Handlers import heavy libraries lazily so ``vega3d --help`` stays fast. A handler
returns an exit code (0 on success). :class:`vega3d.Vega3DError` is printed as a
one-line error with exit code 2 instead of a traceback; a ``--device`` that this machine
does not have is such an error, before any work starts.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys

from vega3d.errors import Vega3DError

# Modules that add subcommands, in the order they appear in ``vega3d --help``.
COMMAND_MODULES = (
    "vega3d.demo",
    "vega3d.simulator.cli",
    "vega3d.probe.cli",
    "vega3d.probe.compare_cli",
    "vega3d.store.cli",
    "vega3d.training.cli",
    "vega3d.world.cli",
    "vega3d.mllm.cli",
    "vega3d.eval.cli",
    "vega3d.video3d.cli",
    "vega3d.libero.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vega3d",
        description="Implicit 3D priors of video generation models for multimodal LLMs (VEGA-3D).",
    )
    from vega3d import __version__

    parser.add_argument("--version", action="version", version=f"vega3d {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def command_line(args: argparse.Namespace, positional: tuple[str, ...] = ()) -> str:
    """The command that ``args`` stand for, as a shell line (``vega3d probe SCENE --encoder ...``):
    ``positional`` arguments first, then every option that is set (lists repeat their flag)."""
    parts = ["vega3d", args.command] + [str(getattr(args, name)) for name in positional]
    for key, value in vars(args).items():
        if key in ("func", "command", *positional) or value is None or value is False or value == []:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        else:
            for v in value if isinstance(value, list) else [value]:
                parts += [flag, str(v)]
    return shlex.join(parts)


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, except that ``section.key=value`` overrides may also follow the options
    (``vega3d train CONFIG --no-progress train.max_steps=10``), where argparse alone stops reading them."""
    args, extra = parser.parse_known_args(argv)
    if extra and isinstance(getattr(args, "overrides", None), list) and all(_is_override(e) for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _is_override(arg: str) -> bool:
    return not arg.startswith("-") and "=" in arg


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = _parse(parser, argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if isinstance(getattr(args, "device", None), str):
            from vega3d.devices import resolve_device

            resolve_device(args.device, what="--device")
        return int(args.func(args) or 0)
    except Vega3DError as err:
        print(f"vega3d {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
