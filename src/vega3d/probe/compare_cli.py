"""``vega3d probe-compare``: the paper's Figure 3 as one command (vega3d.probe.compare)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``probe-compare`` subcommand."""
    p = subparsers.add_parser(
        "probe-compare",
        help="several encoders on the same scenes and frame pairs: one table with intervals, one Figure-3 chart",
        description="Run every encoder of an --encoders spec (YAML) over the same scenes, one encoder in memory at "
        "a time, and write compare.json, compare.txt (every headline field with a bootstrap 95%% interval over frame "
        "pairs, the position-only control and pixels as reference rows) and compare.png (beside the paper's Figure-3 "
        "numbers). Rerunning the same command continues where a killed run stopped. Spec format: docs/towers.md.",
    )
    p.add_argument("scenes", nargs="+", metavar="SCENE", help="scan folders (ScanNet layouts) or 'synthetic'")
    p.add_argument("--encoders", required=True, metavar="SPEC.yaml", help="the towers to compare (docs/towers.md)")
    p.add_argument("--out", required=True, help="output folder (rows/ holds each finished encoder: resumable)")
    p.add_argument("--frames", type=int, default=32, help="frames sampled uniformly from each scan (default 32)")
    p.add_argument("--synthetic-size", default="240x320", help="HxW of the 'synthetic' scene (default 240x320)")
    p.add_argument("--no-figure", action="store_true", help="skip compare.png")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the spec (every encoder name and option, the probe options) before loading anything, then run."""
    from vega3d.cli import command_line
    from vega3d.probe.compare import load_spec, run_compare, write_outputs
    from vega3d.probe.run import load_probe_scene, scene_warnings

    spec, items = load_spec(args.encoders)
    out = Path(args.out)
    scenes = []
    for i, name in enumerate(args.scenes):
        scene = load_probe_scene(name, args.frames, args.synthetic_size, seed=i)
        for w in scene_warnings(scene, args.frames):
            print(f"warning: {scene.name}: {w}")
        scenes.append(scene)
    rows = run_compare(scenes, spec, items, out)
    line = command_line(argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "scenes"}))
    command = line.replace("vega3d probe-compare", "vega3d probe-compare " + shlex.join(args.scenes), 1)
    text = write_outputs(out, rows, spec, scenes, command, not args.no_figure)
    print(text)
    print(
        f"\nwrote {out / 'compare.json'}, {out / 'compare.txt'}"
        + ("" if args.no_figure else f", {out / 'compare.png'}")
    )
    return 0
