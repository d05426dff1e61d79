"""``vega3d train`` (see ``vega3d.cli``): one command for every model family.

:func:`add_arguments` and :func:`run` are shared with ``vega3d train-world`` (:mod:`vega3d.world.cli`),
which is this command restricted to the world-model families, plus its probe summary."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add ``train``."""
    p = subparsers.add_parser(
        "train",
        help="train a VEGA-3D model from a YAML config (accelerate: 1 GPU, DDP, ZeRO, FSDP)",
        description="Train (or resume) a VEGA-3D model; the config's `family` picks the host model "
        "(default qwen25vl). Multi-GPU: accelerate launch --config_file "
        "configs/accelerate/<ddp|zero2|zero3|fsdp>.yaml -m vega3d.cli train CONFIG.yaml",
    )
    add_arguments(p, "see configs/")
    p.set_defaults(func=_train)


def _train(args) -> int:
    run(args)
    return 0


def add_arguments(p, configs: str) -> None:
    """The arguments of a training command: the config, its overrides, ``--no-progress``."""
    p.add_argument("config", help=f"YAML training config ({configs})")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.max_steps=10")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (or progress lines in a log)")


def run(args, check=None):
    """Load the config (``check(config)`` first, before its paths are checked), train, print the
    final model's folder; returns the config on the main process, else None."""
    from accelerate import PartialState

    from vega3d.training.config import load_train_config
    from vega3d.training.loop import train

    if check is not None:
        check(load_train_config(args.config, args.overrides, check_paths=False))
    config = load_train_config(args.config, args.overrides)
    final = train(config, progress=not args.no_progress)
    if not PartialState().is_main_process:
        return None
    print(f"model: {final}")
    return config
