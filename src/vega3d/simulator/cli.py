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
            "safetensors file holding one tensor named 'prompt_embedding' (k, text_dim). Pass it as "
            "prompt_embedding= (or put it in the model folder as prompt_embedding.safetensors) so "
            "feature extraction never loads the 5.7B-parameter text encoder."
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

    from vega3d.simulator.layouts import TEXT_LEN, load_text_encoder
    from vega3d.simulator.prompt import encode_prompt, save_prompt_embedding

    encoder, tokenizer, identity = load_text_encoder(args.model, dtype=args.dtype, device=args.device)
    emb = encode_prompt(encoder, tokenizer, args.text, TEXT_LEN)
    metadata = {
        "text": args.text,
        "text_len": TEXT_LEN,
        "model": identity["path"],
        "layout": identity["layout"],
        "text_encoder_hash": identity["text_encoder_hash"],
        "text_encoder_dtype": str(args.dtype),
        "identity": json.dumps(identity, sort_keys=True),
    }
    path = save_prompt_embedding(emb, args.out, metadata=metadata)
    print(f"wrote prompt_embedding {tuple(emb.shape)} (valid tokens × text_dim; padded to {TEXT_LEN} rows at load) to {path}")
    return 0
