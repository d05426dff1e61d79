"""Wan2.1 stand-ins in the ORIGINAL release layout, for the loader tests only.

The library reads the original layout (``vega3d.simulator.convert``) but never writes it; the
tests write it from the library's own random builders (:func:`vega3d.standin.wan.build_tiny_wan`)
by renaming the diffusers state dicts back to Wan's original key names, so that loading goes
through the real converters. The inverse maps here are written from Wan's ``WanModel`` /
``WanVAE`` / ``T5Encoder`` module trees, independently of the converters they test.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from vega3d.errors import Vega3DError
from vega3d.simulator.convert import (
    ORIGINAL_CONFIG,
    ORIGINAL_DIT_INDEX,
    ORIGINAL_DIT_SINGLE,
    ORIGINAL_T5,
    ORIGINAL_TOKENIZER,
    ORIGINAL_VAE,
    T5_TO_HF,
)
from vega3d.simulator.prompt import PROMPT_FILE, TEXT_LEN
from vega3d.standin import write_marker
from vega3d.standin.wan import (
    build_tiny_text_encoder,
    build_tiny_tokenizer,
    build_tiny_wan,
    write_random_prompt_embedding,
)


def save_tiny_wan_original(
    path, num_layers: int = 4, dim: int = 32, *, with_text_encoder: bool = False, shards: int = 1, **sizes
) -> Path:
    """The same stand-in as ``save_tiny_wan`` with the same arguments (same weights), written in
    the original layout: ``config.json`` (``_class_name: WanModel``), the DiT in
    ``diffusion_pytorch_model.safetensors`` (or ``shards`` shards + index) under Wan's key names,
    ``Wan2.1_VAE.pth``, and with a text encoder ``models_t5_umt5-xxl-enc-bf16.pth`` +
    ``google/umt5-xxl/``."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    transformer, vae, gen, recipe = build_tiny_wan(num_layers, dim, **sizes)
    _write_original_dit(root, transformer, shards)
    torch.save(to_original_vae_keys(vae.state_dict()), root / ORIGINAL_VAE)
    if with_text_encoder:
        tokenizer = build_tiny_tokenizer(root / ORIGINAL_TOKENIZER)
        encoder = build_tiny_text_encoder(len(tokenizer), recipe["text_dim"], gen)
        sd = {k: v.to(torch.bfloat16) for k, v in to_original_t5_keys(encoder.state_dict()).items()}
        torch.save(sd, root / ORIGINAL_T5)
    else:
        write_random_prompt_embedding(root / PROMPT_FILE, recipe["text_dim"], gen, recipe["seed"])
    recipe = {**recipe, "layout": "original", "with_text_encoder": with_text_encoder, "shards": shards}
    write_marker(root, real="Wan2.1-T2V", writer="tests.original_layout.save_tiny_wan_original", recipe=recipe)
    return root


_DIT_TO_ORIGINAL = [
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"\.attn1\.", ".self_attn."),
    (r"\.attn2\.", ".cross_attn."),
    (r"\.to_q\.", ".q."),
    (r"\.to_k\.", ".k."),
    (r"\.to_v\.", ".v."),
    (r"\.to_out\.0\.", ".o."),
    (r"^(blocks\.\d+)\.norm2\.", r"\1.norm3."),  # the affine cross-attention norm is Wan's norm3
    (r"\.ffn\.net\.0\.proj\.", ".ffn.0."),
    (r"\.ffn\.net\.2\.", ".ffn.2."),
    (r"^(blocks\.\d+)\.scale_shift_table$", r"\1.modulation"),
    (r"^scale_shift_table$", "head.modulation"),
    (r"^proj_out\.", "head.head."),
]


def to_original_transformer_keys(state_dict: dict) -> dict:
    """Rename a diffusers WanTransformer3DModel state dict to Wan's original ``WanModel`` names."""
    out = {}
    for key, value in state_dict.items():
        new = key
        for pattern, repl in _DIT_TO_ORIGINAL:
            new = re.sub(pattern, repl, new)
        out[new] = value
    return out


_RES_TO_ORIGINAL = {
    "norm1.gamma": "residual.0.gamma",
    "conv1.weight": "residual.2.weight",
    "conv1.bias": "residual.2.bias",
    "norm2.gamma": "residual.3.gamma",
    "conv2.weight": "residual.6.weight",
    "conv2.bias": "residual.6.bias",
    "conv_shortcut.weight": "shortcut.weight",
    "conv_shortcut.bias": "shortcut.bias",
}


def _vae_key_to_original(key: str) -> str:
    top = {"quant_conv": "conv1", "post_quant_conv": "conv2"}
    head, _, rest = key.partition(".")
    if head in top:
        return f"{top[head]}.{rest}"
    part, _, rest = rest.partition(".")
    if part == "conv_in":
        return f"{head}.conv1.{rest}"
    if part == "norm_out":
        return f"{head}.head.0.{rest}"
    if part == "conv_out":
        return f"{head}.head.2.{rest}"
    if part == "mid_block":
        m = re.match(r"(resnets|attentions)\.(\d)\.(.+)$", rest)
        kind, idx, leaf = m.groups()
        if kind == "attentions":
            return f"{head}.middle.1.{leaf}"
        return f"{head}.middle.{2 * int(idx)}.{_RES_TO_ORIGINAL[leaf]}"
    if part == "down_blocks":
        idx, _, leaf = rest.partition(".")
        return f"{head}.downsamples.{idx}.{_RES_TO_ORIGINAL.get(leaf, leaf)}"
    if part == "up_blocks":
        m = re.match(r"(\d+)\.(resnets|upsamplers)\.(\d+)\.(.+)$", rest)
        block, kind, idx, leaf = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
        if kind == "upsamplers":
            return f"{head}.upsamples.{4 * block + 3}.{leaf}"
        return f"{head}.upsamples.{4 * block + idx}.{_RES_TO_ORIGINAL[leaf]}"
    raise Vega3DError(f"no original Wan VAE name for diffusers key {key!r}")


def to_original_vae_keys(state_dict: dict) -> dict:
    """Rename a diffusers AutoencoderKLWan state dict to the names in ``Wan2.1_VAE.pth``."""
    return {_vae_key_to_original(k): v for k, v in state_dict.items()}


def to_original_t5_keys(state_dict: dict) -> dict:
    """Rename a transformers UMT5EncoderModel state dict to Wan's ``T5Encoder`` names."""
    inverse = [(re.compile("^" + hf.replace(".", r"\.").replace("{i}", r"(\d+)") + "$"), wan) for wan, hf in T5_TO_HF]
    out = {}
    for key, value in state_dict.items():
        if key == "encoder.embed_tokens.weight":
            continue  # tied to shared.weight
        for pattern, wan in inverse:
            m = pattern.match(key)
            if m:
                out[wan.replace("{i}", m.group(1)) if m.groups() else wan] = value
                break
        else:
            raise Vega3DError(f"no original Wan T5 name for transformers key {key!r}")
    return out


def _write_original_dit(root: Path, transformer, shards: int) -> None:
    from safetensors.torch import save_file

    cfg = transformer.config
    config = {
        "_class_name": "WanModel",
        "_diffusers_version": "0.30.0",
        "dim": cfg.num_attention_heads * cfg.attention_head_dim,
        "eps": cfg.eps,
        "ffn_dim": cfg.ffn_dim,
        "freq_dim": cfg.freq_dim,
        "in_dim": cfg.in_channels,
        "model_type": "t2v",
        "num_heads": cfg.num_attention_heads,
        "num_layers": cfg.num_layers,
        "out_dim": cfg.out_channels,
        "text_len": TEXT_LEN,
    }  # like the released Wan2.1-T2V config.json: text_dim and patch_size are not in it
    (root / ORIGINAL_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    sd = {k: v.contiguous() for k, v in to_original_transformer_keys(transformer.state_dict()).items()}
    if shards == 1:
        save_file(sd, str(root / ORIGINAL_DIT_SINGLE), metadata={"format": "pt"})
        return
    keys = sorted(sd)
    per = math.ceil(len(keys) / shards)
    weight_map = {}
    for i in range(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: sd[k] for k in keys[i * per : (i + 1) * per]}
        save_file(part, str(root / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
    total = sum(v.numel() * v.element_size() for v in sd.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (root / ORIGINAL_DIT_INDEX).write_text(json.dumps(index, indent=2) + "\n")
