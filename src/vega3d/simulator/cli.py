"""Subcommands of the simulator subpackage (see ``vega3d.cli``)."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add ``export-prompt``."""
    p = subparsers.add_parser(
        "export-prompt",
        help="compute Wan2.1's (empty-)prompt context once with the umT5 text encoder and save it",
        description=(
            "Load only the umT5 text encoder of a Wan2.1 folder (either layout), encode the prompt "
            "exactly as Wan does (512-token max length, trimmed to its valid tokens) and write a small "
            "safetensors file holding one tensor named 'prompt_embedding' (k, text_dim). Give it to "
            "`vega3d extract --prompt-embedding FILE` (Python: prompt_embedding=FILE), or put it in the model "
            "folder as prompt_embedding.safetensors, so feature extraction never loads the 5.7B-parameter "
            "text encoder. The metadata records stand_in=true when --model is a random-weight stand-in."
        ),
    )
    p.add_argument("--model", required=True, help="Wan2.1 folder that contains the text encoder")
    p.add_argument("--out", required=True, help="output .safetensors file")
    p.add_argument("--text", default="", help='prompt text (default: the empty prompt "", as VEGA-3D uses)')
    p.add_argument("--device", default="cpu", help="device for the text encoder (default: cpu)")
    p.add_argument("--dtype", default="float32", help="text encoder dtype (default: float32; bfloat16 on GPU)")
    p.set_defaults(func=_export_prompt)


def _export_prompt(args) -> int:
    import json
    import sys
    from pathlib import Path

    from vega3d.simulator.layouts import load_text_encoder
    from vega3d.simulator.prompt import TEXT_LEN, encode_prompt, save_prompt_embedding
    from vega3d.standin import is_stand_in, notice

    root = Path(args.model).expanduser()
    _check_text_encoder(root)
    stand_in = is_stand_in(root)
    if stand_in:
        consequence = (
            "The prompt embedding it gives is for testing only (recorded as stand_in=true in the file's metadata)."
        )
        print(notice([f"--model {root} (random weights, not Wan2.1)"], consequence), file=sys.stderr)
    encoder, tokenizer, identity = load_text_encoder(root, dtype=args.dtype, device=args.device)
    emb = encode_prompt(encoder, tokenizer, args.text, TEXT_LEN)
    metadata = {
        "text": args.text,
        "text_len": TEXT_LEN,
        "model": identity["path"],
        "layout": identity["layout"],
        "text_encoder_hash": identity["text_encoder_hash"],
        "text_encoder_dtype": str(args.dtype),
        "stand_in": "true" if stand_in else "false",
        "identity": json.dumps(identity, sort_keys=True),
    }
    path = save_prompt_embedding(emb, args.out, metadata=metadata)
    print(
        f"wrote prompt_embedding {tuple(emb.shape)} (valid tokens × text_dim; padded to {TEXT_LEN} rows at load) to {path}"
    )
    return 0


def _check_text_encoder(root) -> None:
    """The CLI's own wording of a folder without the text encoder (before anything is loaded)."""
    from vega3d.errors import Vega3DError
    from vega3d.simulator.layouts import TEXT_ENCODER_FILES, detect_layout, has_text_encoder
    from vega3d.simulator.prompt import PROMPT_FILE

    layout = detect_layout(root)
    if not has_text_encoder(root, layout):
        want = TEXT_ENCODER_FILES[layout]
        raise Vega3DError(
            f"--model {root}: no text encoder ({want}); export-prompt needs it. Run it on the full Wan2.1 "
            f"folder (the {layout} layout with {want}); the file it writes is then given to "
            f"`vega3d extract --prompt-embedding FILE` (Python: prompt_embedding=FILE) or put in a model "
            f"folder as {PROMPT_FILE}"
        )
