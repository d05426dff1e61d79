"""``vega3d train-world``: ``vega3d train`` for the world-model families (``world``: the DiT,
``world_vae``: its VAE), printing the probe verdict at the end."""

from __future__ import annotations

FAMILIES = ("world", "world_vae")


def register(subparsers) -> None:
    """Add ``train-world``."""
    from vega3d.training.cli import add_arguments

    p = subparsers.add_parser(
        "train-world",
        help="train a small Wan-architecture world model (or its VAE) from a YAML config, probing it as it trains",
        description="Train (or resume) a small WanTransformer3DModel with Wan's rectified-flow objective on "
        "multi-frame clips (family: world), or the small AutoencoderKLWan it trains on (family: world_vae), on the "
        "one trainer (accelerate; rerunning the command resumes). The DiT run probes the model every probe.every "
        "steps (OUTPUT/probe/probe.json + probe.png) and writes OUTPUT/model/, a Wan2.1 folder in the diffusers "
        "layout that the simulator, vega3d probe/extract/demo --model load. See docs/world.md.",
    )
    add_arguments(p, "configs/world_tiny.yaml, world_vae_cpu.yaml, ...")
    p.set_defaults(func=_train)


def _check_family(config, path) -> None:
    from vega3d.errors import Vega3DError

    if config.family not in FAMILIES:
        raise Vega3DError(f"{path}: family: {config.family!r} is not a world-model family; expected one of "
                          f"{', '.join(FAMILIES)} (other families: vega3d train)")  # fmt: skip


def _train(args) -> int:
    from pathlib import Path

    from vega3d.training.cli import run

    config = run(args, check=lambda c: _check_family(c, args.config))
    report = None if config is None else Path(config.train.output_dir) / "probe" / "probe.json"
    if report is not None and config.family == "world" and report.is_file():
        from vega3d.files import read_json
        from vega3d.world.schedule import summary

        print(summary(read_json(report, "probe report")))
        print(f"probe: {report} and {report.with_suffix('.png')}")
    return 0
