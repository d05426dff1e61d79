"""``vega3d probe``: score an encoder's multi-view consistency on a posed RGB-D scene."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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
    p.add_argument("--seed", type=int, help="wan noise seed / random_vit and effnet_lite0 --random-init weight seed")
    p.add_argument("--stage", type=int, help="effnet_lite0: stage 1-7 whose output is the grid (default 5, stride 16)")
    p.add_argument(
        "--random-init",
        action="store_true",
        help="effnet_lite0: the same network with random weights drawn from --seed (sets pretrained=False)",
    )
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


def _sweep(spec: str, encoder: str):
    """``("blocks", [10, 15])`` or ``("timesteps", [100.0, 300.0])`` from ``--sweep``."""
    from vega3d.errors import Vega3DError

    key, _, values = spec.partition("=")
    try:
        parsed = [int(v) if key == "blocks" else float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        parsed = []
    if key not in SWEEPS or not parsed:
        raise Vega3DError(f"--sweep {spec!r}: expected blocks=B1,B2,... or timesteps=T1,T2,... (numbers)")
    if encoder != "wan":
        raise Vega3DError(f"--sweep {spec!r}: a sweep over {key} needs the 'wan' encoder, got {encoder!r}")
    return key, parsed


def _encoder_options(args) -> dict:
    """--encoder-option KEY=VALUE pairs and the encoder flags that are set."""
    enc_opts = _pairs(args.encoder_option, "--encoder-option")
    for flag in ("model", "block", "timestep", "height", "width", "layer", "seed", "device", "dtype", "vae_dtype"):
        if getattr(args, flag) is not None:
            enc_opts[flag] = getattr(args, flag)
    if args.stage is not None:
        enc_opts["stage"] = args.stage
    if args.random_init:
        enc_opts["pretrained"] = False
    return enc_opts


def _label(args) -> str:
    """The encoder's name in titles; a random-init network says so."""
    return f"{args.encoder} (random init, seed {args.seed or 0})" if args.random_init else args.encoder


def run(args: argparse.Namespace) -> int:
    """Check every option (before any scene or model is loaded), run, print the table."""
    from vega3d.encoders import check_encoder
    from vega3d.probe.result import ProbeOptions
    from vega3d.probe.run import stage_bar

    options = _pairs(args.option, "--option")
    ProbeOptions.from_kwargs(**options)  # fail fast on a bad option (name, type or range)
    enc_opts = _encoder_options(args)
    sweep = _sweep(args.sweep, args.encoder) if args.sweep else None
    if sweep and sweep[0] == "blocks":
        enc_opts.setdefault("block", max(sweep[1]))  # the deepest block: one DiT pass serves all
    encoder_class = check_encoder(args.encoder, enc_opts)
    out = Path(args.out)
    with stage_bar("probe", 4) as step:
        table, warnings = _run(args, options, lambda: encoder_class(**enc_opts), sweep, out, step)
    for w in warnings:
        print(f"warning: {w}")
    print(("\n" if warnings else "") + table)
    print(f"\nwrote {out / 'probe.json'}, {out / 'probe.txt'}" + ("" if args.no_figures else " and PNG figures"))
    return 0


def _run(args, options, build_encoder, sweep, out: Path, step) -> tuple[str, list[str]]:
    """Load, encode, score, write: returns (the table, the scene's warnings)."""
    from vega3d.cli import command_line
    from vega3d.files import write_json
    from vega3d.probe.run import load_probe_scene, probe_encoder, scene_info, scene_warnings

    step("loading scene")
    scene = load_probe_scene(args.scene, args.frames, args.synthetic_size)
    warnings = scene_warnings(scene, args.frames)
    step(f"building encoder {args.encoder}")
    encoder = build_encoder()  # its options were checked before the scene was loaded
    command = command_line(args, positional=("scene",))
    if sweep:
        rows, table = _run_sweep(args, scene, encoder, sweep, options, out, step)
        report = {"command": command, "scene": scene_info(scene), "warnings": warnings, **rows}
    else:
        run = probe_encoder(scene, encoder, options, warnings=warnings, progress=True, step=step)
        report, table = run.report(command), run.table(_label(args))
        if not args.no_figures:
            run.save_figures(out, _label(args), heatmaps="probe_heatmaps.png", pca="probe_pca.png")
    write_json(out / "probe.json", report)
    (out / "probe.txt").write_text(
        "".join(f"warning: {w}\n" for w in warnings) + ("\n" if warnings else "") + table + "\n"
    )
    return table, warnings


def _run_sweep(args, scene, encoder, sweep, options, out: Path, step) -> tuple[dict, str]:
    """Scores at every swept block or timestep (one model load) next to the position-only control:
    the report's sweep, rows and control, and the table."""
    from vega3d.probe import figures
    from vega3d.probe.run import position_control, stand_in_tag
    from vega3d.probe.sweep import sweep_blocks, sweep_timesteps

    key, values = sweep
    step(f"sweeping {key}")
    rows = (sweep_blocks if key == "blocks" else sweep_timesteps)(scene, encoder, values, progress=True, **options)
    step("position-only control")
    control = position_control(scene, rows[0]["result"].grid_size, options)
    name = key[:-1]
    tag = stand_in_tag(encoder.config)
    if not args.no_figures:
        out.mkdir(parents=True, exist_ok=True)
        title = f"{scene.name}: {args.encoder} vs {name}{tag}"
        figures.sweep_figure(rows, name, out / "probe_sweep.png", control, title=title)
    report = {
        "sweep": key,
        "rows": [{name: r[name], "encoder": r["encoder"], "result": r["result"].to_dict()} for r in rows],
        "position_control": control.to_dict(),
    }
    return report, _sweep_table(rows, name, control) + (f"\n{tag.strip()}" if tag else "")


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
