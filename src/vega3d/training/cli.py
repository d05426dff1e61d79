"""``vega3d train`` (see ``vega3d.cli``): one command for every model family."""

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
    p.add_argument("config", help="YAML training config (see configs/)")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.max_steps=10")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (or progress lines in a log)")
    p.set_defaults(func=_train)


def _train(args) -> int:
    from accelerate import PartialState

    from vega3d.training.config import load_train_config
    from vega3d.training.loop import train

    config = load_train_config(args.config, args.overrides)
    final = train(config, progress=not args.no_progress)
    if PartialState().is_main_process:
        print(f"model: {final}")
    return 0
