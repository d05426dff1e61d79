"""``vega3d inspect-release`` and ``vega3d convert-release`` (added by ``vega3d.mllm.cli``)."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add ``inspect-release`` and ``convert-release``."""
    p = subparsers.add_parser(
        "inspect-release",
        help="what the released VEGA-3D folder holds, and whether its DiT was re-initialised",
        description="Read the released VEGA-3D-Spatial-Reasoning folder (index and safetensors headers; the DiT's "
        "tensors one at a time) and print its parts, config attributes and the verdict dit_reinitialised: "
        "true | false | null with the evidence. See docs/release.md.",
    )
    p.add_argument("folder", help="the release folder (config.json, model.safetensors.index.json, shards)")
    p.add_argument("--wan", help="a Wan2.1-T2V-1.3B folder (either layout): compare the DiT tensor by tensor")
    p.add_argument("--out", help="also write the report as JSON to this file")
    p.set_defaults(func=_inspect)

    p = subparsers.add_parser(
        "convert-release",
        help="convert the released VEGA-3D folder into a vega3d checkpoint + a Wan folder for its simulator",
        description="Write OUT: a vega3d checkpoint (base = the release folder, projector merger_mlp and fusion "
        "residual_gated with the release's tensors, the simulator recorded at the release's tower settings) and "
        "OUT/wan (diffusers layout: the release's DiT, or --wan's with --dit wan; the VAE and the empty-prompt "
        "context from --wan or --prompt-embedding). See docs/release.md.",
    )
    p.add_argument("folder", help="the release folder")
    p.add_argument("--wan", required=True, help="a Wan2.1-T2V-1.3B folder (either layout): VAE, DiT config, prompt")
    p.add_argument("--out", required=True, help="a new (or empty) folder for the checkpoint")
    p.add_argument(
        "--dit",
        choices=["release", "wan"],
        default="release",
        help="which DiT the simulator uses: the release's own (default: what was trained and evaluated) or --wan's",
    )
    p.add_argument(
        "--prompt-embedding",
        help="the empty-prompt context: the release's wan_prompt_embedding.pt or a vega3d export-prompt file "
        "(default: --wan's prompt_embedding.safetensors, else its text encoder)",
    )
    p.set_defaults(func=_convert)


def _inspect(args) -> int:
    from pathlib import Path

    from vega3d.errors import Vega3DError
    from vega3d.files import write_json
    from vega3d.mllm.release.inspect import format_report, inspect_release

    if args.out and Path(args.out).is_dir():
        raise Vega3DError(f"--out {args.out}: is a folder; expected a JSON file name")
    report = inspect_release(args.folder, wan=args.wan)
    print(format_report(report))
    if args.out:
        print(f"report: {write_json(args.out, report)}")
    return 0


def _convert(args) -> int:
    from vega3d.mllm.checkpoint import read_checkpoint_config
    from vega3d.mllm.release.convert import convert_release

    out = convert_release(args.folder, args.out, args.wan, dit=args.dit, prompt_embedding=args.prompt_embedding)
    config = read_checkpoint_config(out)
    origin = config.origin or {}
    value = {True: "true", False: "false", None: "null"}[origin.get("dit_reinitialised")]
    print(f"checkpoint: {out} (base: {config.base_model}; projector merger_mlp, fusion residual_gated)")
    print(
        f"simulator: {out / 'wan'} (DiT: {origin.get('dit')}, block {config.simulator['block']}; "
        f"prompt: {origin.get('prompt')})"
    )
    print(f"dit_reinitialised: {value} — {origin.get('verdict')}")
    print(f'next: vega3d ask --model {out} --video VIDEO "QUESTION"')
    return 0
