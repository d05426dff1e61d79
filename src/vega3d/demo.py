"""``vega3d demo``: the main job end to end on built-in defaults, with no downloads.

Scene (the built-in synthetic room, or a scan folder) → Wan world simulator (the built-in
random-weight stand-in, or a real Wan2.1 folder) → per-frame feature grids → the
multi-view correspondence probe next to the position-only control → a PCA picture of the
features, a JSON report and a readable summary.
"""

from __future__ import annotations

import time
from pathlib import Path

STAND_IN_NOTICE = (
    "NOTE: the built-in model is a small STAND-IN with random weights (Wan2.1 architecture at a tiny\n"
    "width), not Wan2.1: its features show that the pipeline runs, not what Wan2.1 knows.\n"
    "Use real weights with:  vega3d demo --model /path/to/Wan2.1-T2V-1.3B   (original or diffusers layout)"
)


def register(subparsers) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser(
        "demo",
        help="run the simulator and the probe on the built-in defaults (no downloads)",
        description=__doc__.split("\n\n")[0] + " Writes features.pca.png, report.json to --out.",
    )
    p.add_argument("--model", default=None, help="Wan2.1-T2V folder (default: the built-in random-weight stand-in)")
    p.add_argument("--scene", default="synthetic", help="scan folder, or 'synthetic' (default)")
    p.add_argument(
        "--frames", type=int, default=8, help="frames sampled uniformly from the scene, at least 2 (default 8)"
    )
    p.add_argument("--height", type=int, default=None, help="simulator input height (default 240 stand-in, 480 real)")
    p.add_argument("--width", type=int, default=None, help="simulator input width (default 320 stand-in, 832 real)")
    p.add_argument("--block", type=int, default=20, help="DiT block, 0-based (default 20)")
    p.add_argument("--timestep", type=float, default=300, help="noise timestep (default 300 → t=299)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the synthetic scene, the simulator's noise and the probe's sampling (default 0)",
    )
    p.add_argument(
        "--device", default="cpu", help="torch device of the simulator: cpu, cuda, cuda:1, mps (default cpu)"
    )
    p.add_argument(
        "--dtype",
        default="float32",
        help="the DiT's dtype: float32 | bfloat16 | float16 (default float32; the VAE stays float32)",
    )
    p.add_argument("--out", default="vega3d_demo", help="output folder (default ./vega3d_demo)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Scene → simulator → probe next to the position-only control (vega3d.probe.run) → outputs."""
    from vega3d.cli import command_line
    from vega3d.encoders.wan import WanEncoder
    from vega3d.files import write_json
    from vega3d.probe.run import load_probe_scene, probe_encoder, scene_warnings, stage_bar

    out = Path(args.out)
    with stage_bar("demo", 4) as step:
        step("loading scene")
        t0 = time.perf_counter()
        scene = load_probe_scene(args.scene, args.frames, seed=args.seed)  # checks --frames before any work
        t_scene = time.perf_counter() - t0
        step("loading model")
        sim, model_dir, t_load = _load_simulator(args)
        warnings = scene_warnings(scene, args.frames)
        run = probe_encoder(scene, WanEncoder(simulator=sim), {"seed": args.seed}, warnings=warnings, step=step)
    label = f"Wan2.1 DiT block {sim.block}"
    (figure,) = run.save_figures(out, label, pca="features.pca.png")
    timing = {
        "scene": t_scene,
        "load_model": t_load,
        "extract": run.encode_s,
        "frames_per_s": len(scene) / run.encode_s,
    }
    report = run.report(command_line(args), features_shape=list(run.features.shape), timing_s=timing)
    write_json(out / "report.json", report)
    if sim.stand_in:
        print(STAND_IN_NOTICE + "\n")
    for w in warnings:
        print(f"warning: {w}")
    _print_summary(args, run, sim, model_dir, t_load, figure, out / "report.json")
    return 0


def _load_simulator(args):
    """The Wan simulator of ``--model`` (default: the built-in stand-in), its folder and the load time."""
    from vega3d.simulator import WanWorldSimulator
    from vega3d.standin.wan import default_model_dir

    built_in = args.model is None
    t0 = time.perf_counter()
    model_dir = default_model_dir() if built_in else Path(args.model)
    sim = WanWorldSimulator.from_pretrained(
        model_dir,
        block=args.block,
        timestep=args.timestep,
        height=args.height or (240 if built_in else 480),
        width=args.width or (320 if built_in else 832),
        seed=args.seed,
        dtype=args.dtype,
        device=args.device,
    )
    return sim, model_dir, time.perf_counter() - t0


def _print_summary(args, run, sim, model_dir, t_load, figure, report) -> None:
    """What ran, how fast, the scores, where the outputs are, and how to read the scores."""
    from vega3d.probe.run import READING

    scene, result, control, n = run.scene, run.result, run.control, len(run.scene)
    t, sigma = sim.noise_level
    cfg = sim.config
    rows = [
        ("model", f"{model_dir}" + ("  [STAND-IN, random weights]" if sim.stand_in else "")),
        ("scene", f"{scene.name}: {n} frames of {scene.image_size[1]}x{scene.image_size[0]}"),
        ("noise", f"timestep {args.timestep:g} → DiT t={t}, sigma={sigma:.8f} (shift {cfg.shift:g})"),
        (
            "features",
            f"block {sim.block} of {cfg.num_layers}: {tuple(run.features.shape)} (N, h, w, C) at {cfg.width}x{cfg.height}",
        ),
        (
            "timing",
            f"load {t_load:.2f} s, extract {run.encode_s:.2f} s ({n / run.encode_s:.1f} frames/s on {args.device})",
        ),
        (
            "probe",
            f"position-controlled AUROC {result.auroc_local:.3f} (the headline; chance 0.5), "
            f"AUROC {result.auroc:.3f}, paper score {result.paper_score:.3f}, over {result.num_pairs} pairs",
        ),
        (
            "control",
            f"position-only features: position-controlled AUROC {control.auroc_local:.3f}, "
            f"AUROC {control.auroc:.3f}, paper score {control.paper_score:.3f}",
        ),
        ("figure", f"{figure}  (top row: frames; bottom row: PCA of their features, 3 components as RGB)"),
        ("report", str(report)),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("\n" + READING)
