"""``vega3d probe``: score an encoder's multi-view consistency on a posed RGB-D scene."""

from __future__ import annotations

import argparse
import json

SWEEPS = ("blocks", "timesteps")


def register(subparsers) -> None:
    """Add the ``probe`` subcommand."""
    p = subparsers.add_parser(
        "probe",
        help="multi-view correspondence probe of an encoder on a posed RGB-D scene",
        description="Score how consistently an encoder describes the same 3D point across views: the "
        "paper-compatible voxel score and the rigorous one (position-controlled AUROC, NN recall), "
        "next to a position-only control. Writes probe.json, probe.txt and PNG figures to --out.",
    )
    p.add_argument("scene", help="scan folder (ScanNet SensReader or posed_images layout) or 'synthetic'")
    p.add_argument("--encoder", required=True, help="pixels | position | random_vit | wan | hf")
    p.add_argument("--model", help="model folder (wan: Wan2.1-T2V; hf: a transformers vision backbone)")
    p.add_argument("--frames", type=int, default=32, help="frames sampled uniformly from the scan (default 32)")
    p.add_argument("--out", default="probe_out", help="output folder (default probe_out)")
    p.add_argument("--sweep", help="blocks=10,15,20 or timesteps=100,300,500 (wan only; one model load)")
    p.add_argument("--block", type=int, help="wan: 0-based DiT block (default 20)")
    p.add_argument("--timestep", type=float, help="wan: noise timestep (default 300)")
    p.add_argument("--height", type=int, help="wan: simulator input height (default 480)")
    p.add_argument("--width", type=int, help="wan: simulator input width (default 832)")
    p.add_argument("--layer", type=int, help="hf: hidden_states index (default: last_hidden_state)")
    p.add_argument("--seed", type=int, help="wan noise seed / random_vit weight seed")
    p.add_argument("--device", help="wan/hf: torch device (default cpu)")
    p.add_argument("--dtype", help="wan/hf: float32 | bfloat16 | float16")
    p.add_argument(
        "--vae-dtype", help="wan: the VAE's dtype, float32 | bfloat16 | float16 (default float32, whatever --dtype is)"
    )
    p.add_argument(
        "--encoder-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other encoder option (value parsed as JSON when possible)",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="probe option, a vega3d.probe.ProbeOptions field (e.g. min_motion_px=8)",
    )
    p.add_argument("--synthetic-size", default="240x320", help="HxW of the 'synthetic' scene (default 240x320)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.set_defaults(func=run)


def _pairs(items, what) -> dict:
    from vega3d.errors import Vega3DError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise Vega3DError(f"{what} {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _sweep(spec):
    from vega3d.errors import Vega3DError

    key, sep, values = (spec or "").partition("=")
    if not sep or key not in SWEEPS:
        raise Vega3DError(f"--sweep {spec!r}: expected blocks=B1,B2,... or timesteps=T1,T2,...")
    try:
        parsed = [int(v) if key == "blocks" else float(v) for v in values.split(",") if v.strip()]
    except ValueError as err:
        raise Vega3DError(f"--sweep {spec!r}: {err}") from err
    if not parsed:
        raise Vega3DError(f"--sweep {spec!r}: no values")
    return key, parsed


def load_probe_scene(spec: str, frames: int, synthetic_size: str = "240x320"):
    """The scene of ``vega3d probe``: a scan folder (``frames`` sampled uniformly) or 'synthetic'."""
    from vega3d.errors import Vega3DError
    from vega3d.scenes import load_scene, synthetic_scene

    if frames < 2:
        raise Vega3DError(f"--frames {frames}: the probe needs at least 2 frames")
    if spec == "synthetic":
        try:
            h, w = (int(v) for v in synthetic_size.lower().split("x"))
        except ValueError as err:
            raise Vega3DError(f"--synthetic-size {synthetic_size!r}: expected HxW, e.g. 240x320") from err
        return synthetic_scene(num_frames=frames, height=h, width=w)
    return load_scene(spec, frames=frames)


def scene_warnings(scene, frames: int) -> list[str]:
    """What loading the scene changed or substituted, in words (from ``Scene.extras``): fewer
    frames than asked for, depth intrinsics taken from colour, frames with invalid poses."""
    extras = scene.extras if isinstance(scene.extras, dict) else {}
    out = []
    available = extras.get("num_available_frames")
    if available is not None and available < frames:
        out.append(f"asked for {frames} frames, the input has {available}: using all {available}")
    if extras.get("depth_intrinsics_from"):
        out.append(
            f"{scene.source}: no depth intrinsics file; depth has the colour image size, so the colour "
            f"intrinsics ({extras['depth_intrinsics_from']}) are used for depth"
        )
    invalid = extras.get("invalid_pose_frame_ids") or []
    if invalid:
        out.append(
            f"{len(invalid)} of {len(scene)} loaded frames have invalid (non-finite) poses, frame ids "
            f"{list(invalid)}: excluded from scoring"
        )
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from vega3d.probe.result import ProbeOptions

    options = _pairs(args.option, "--option")
    ProbeOptions.from_kwargs(**dict(options))  # fail fast on a bad option (name, type or range)
    enc_opts = _pairs(args.encoder_option, "--encoder-option")
    for flag in ("model", "block", "timestep", "height", "width", "layer", "seed", "device", "dtype", "vae_dtype"):
        if getattr(args, flag) is not None:
            enc_opts[flag] = getattr(args, flag)
    sweep = _sweep(args.sweep) if args.sweep else None
    if sweep and sweep[0] == "blocks" and args.encoder == "wan":
        enc_opts.setdefault("block", max(sweep[1]))  # the deepest block: one DiT pass serves all
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # log records (e.g. the scene loader's) are written above the bar, not onto its line;
    # the bar is closed before anything is printed
    with logging_redirect_tqdm(), tqdm(total=4, desc="probe", unit="stage") as stages:
        table, warnings = _run(args, options, enc_opts, sweep, out, stages)
    for w in warnings:
        print(f"warning: {w}")
    print(("\n" if warnings else "") + table)
    print(f"\nwrote {out / 'probe.json'}, {out / 'probe.txt'}" + ("" if args.no_figures else " and PNG figures"))
    return 0


def _run(args, options, enc_opts, sweep, out, stages) -> tuple[str, list[str]]:
    """Everything but printing: returns (the table, the run's warnings)."""
    from vega3d.encoders import build_encoder
    from vega3d.encoders.position import PositionEncoder
    from vega3d.probe import figures
    from vega3d.probe.score import score
    from vega3d.probe.sweep import sweep_blocks, sweep_timesteps

    stages.set_postfix_str("loading scene")
    scene = load_probe_scene(args.scene, args.frames, args.synthetic_size)
    warnings = scene_warnings(scene, args.frames)
    stages.update()
    stages.set_postfix_str(f"building encoder {args.encoder}")
    encoder = build_encoder(args.encoder, **enc_opts)
    stages.update()
    scene_info = {
        "name": scene.name,
        "source": scene.source,
        "num_frames": len(scene),
        "frame_ids": list(scene.frame_ids),
        "image_size": list(scene.image_size),
        "depth_size": list(scene.depth_size),
    }
    command = "vega3d probe " + " ".join(_argv(args))
    stand_in = encoder.config.get("stand_in") is True
    tag = " [STAND-IN: random weights, not the real model]" if stand_in else ""

    if sweep:
        key, values = sweep
        stages.set_postfix_str(f"sweeping {key}")
        fn = sweep_blocks if key == "blocks" else sweep_timesteps
        rows = fn(scene, encoder, values, progress=True, **options)
        grid = rows[0]["result"].grid_size
        stages.update()
        stages.set_postfix_str("position-only control")
        control = score(scene, PositionEncoder(grid=grid)(scene.frames()), **options)
        name = key[:-1]
        report = {
            "command": command,
            "scene": scene_info,
            "warnings": warnings,
            "sweep": key,
            "rows": [{name: r[name], "encoder": r["encoder"], "result": r["result"].to_dict()} for r in rows],
            "position_control": control.to_dict(),
        }
        table = _sweep_table(rows, name, control) + (f"\n{tag.strip()}" if tag else "")
        if not args.no_figures:
            figures.sweep_figure(
                rows, name, out / "probe_sweep.png", control, title=f"{scene.name}: {args.encoder} vs {name}{tag}"
            )
        stages.update()
    else:
        stages.set_postfix_str("encoding frames")
        feats = encoder(scene.frames())
        stages.update()
        stages.set_postfix_str("scoring")
        result = score(scene, feats, progress=True, **options)
        control = score(scene, PositionEncoder(grid=tuple(feats.shape[1:3]))(scene.frames()), **options)
        report = {
            "command": command,
            "scene": scene_info,
            "warnings": warnings,
            "encoder": encoder.config,
            "result": result.to_dict(),
            "position_control": control.to_dict(),
        }
        table = "\n\n".join(
            [
                result.table(
                    f"{args.encoder} on {scene.name} ({len(scene)} frames, grid "
                    f"{result.grid_size[0]}x{result.grid_size[1]}){tag}"
                ),
                control.table("position-only control (same grid)"),
            ]
        )
        if not args.no_figures:
            figures.similarity_heatmaps(
                scene, feats, result, out / "probe_heatmaps.png", title=f"{args.encoder} on {scene.name}{tag}"
            )
            figures.pca_figure(
                scene, feats, out / "probe_pca.png", title=f"{args.encoder}: PCA of features across views{tag}"
            )
        stages.update()
    (out / "probe.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    (out / "probe.txt").write_text(
        "".join(f"warning: {w}\n" for w in warnings) + ("\n" if warnings else "") + table + "\n"
    )
    return table, warnings


def _argv(args) -> list[str]:
    parts = [args.scene, "--encoder", args.encoder]
    for flag in (
        "model",
        "frames",
        "out",
        "sweep",
        "block",
        "timestep",
        "height",
        "width",
        "layer",
        "seed",
        "device",
        "dtype",
        "vae_dtype",
    ):
        v = getattr(args, flag)
        if v is not None:
            parts += [f"--{flag.replace('_', '-')}", str(v)]
    parts += [f"--encoder-option {o}" for o in args.encoder_option] + [f"--option {o}" for o in args.option]
    if args.scene == "synthetic":
        parts += ["--synthetic-size", args.synthetic_size]
    return parts


def _sweep_table(rows, name, control) -> str:
    def f(x):
        return "  n/a" if x != x else f"{x:6.3f}"

    radius = list(rows[0]["result"].nn_recall)[len(rows[0]["result"].nn_recall) // 2]
    head = f"{name:>9}  {'AUROC-local':>11}  {'AUROC':>6}  {'paper':>6}  {'recall@' + radius:>10}  {'pairs':>5}"
    lines = [head]
    for r in rows:
        res = r["result"]
        lines.append(
            f"{r[name]:>9g}  {f(res.auroc_local):>11}  {f(res.auroc):>6}  {f(res.paper_score):>6}  "
            f"{f(res.nn_recall[radius]):>10}  {res.num_pairs:>5}"
        )
    lines.append(
        f"{'position':>9}  {f(control.auroc_local):>11}  {f(control.auroc):>6}  {f(control.paper_score):>6}  "
        f"{f(control.nn_recall[radius]):>10}  {control.num_pairs:>5}"
    )
    for label, res in [(f"{name} {r[name]:g}", r["result"]) for r in rows] + [("position", control)]:
        lines += [f"note ({label}): {n}" for n in res.notes] + [f"warning ({label}): {w}" for w in res.warnings]
    return "\n".join(lines)
