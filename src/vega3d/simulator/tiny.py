"""Tiny random-weight stand-ins for Wan2.1-T2V, written to disk in the real layouts.

A stand-in has Wan2.1-T2V's architecture (DiT patch (1, 2, 2), 16 latent channels,
the Wan2.1 VAE topology with z_dim 16) at a tiny width and random weights drawn from
an explicit ``torch.Generator`` (same ``seed`` → same bytes). It is NOT Wan2.1: its
features mean nothing. Every stand-in folder carries ``VEGA3D_STAND_IN.md`` saying so.

The ``"original"`` layout is produced by renaming the diffusers state dicts back to
Wan's original key names (:func:`to_original_transformer_keys`,
:func:`to_original_vae_keys`, :func:`to_original_t5_keys`), so loading it goes
through the real converters in :mod:`vega3d.simulator.convert`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from vega3d.errors import Vega3DError
from vega3d.simulator.convert import T5_TO_HF, WAN21_LATENTS_MEAN, WAN21_LATENTS_STD
from vega3d.simulator.layouts import (
    ORIGINAL_CONFIG,
    ORIGINAL_DIT_INDEX,
    ORIGINAL_DIT_SINGLE,
    ORIGINAL_T5,
    ORIGINAL_TOKENIZER,
    ORIGINAL_VAE,
    PROMPT_FILE,
    STAND_IN_MARKER,
    TEXT_LEN,
)

#: Version of the built-in default stand-in; bump when its recipe changes.
DEFAULT_MODEL_VERSION = 1
#: The built-in default: 30 blocks like Wan2.1-T2V-1.3B (so block 20 exists), tiny width.
DEFAULT_MODEL_KWARGS = dict(num_layers=30, dim=64, num_heads=4, ffn_dim=128, text_dim=64, vae_base_dim=8, seed=0)

_MARKER_TEXT = """# vega3d stand-in model — NOT Wan2.1

This folder was written by `vega3d.simulator.tiny.save_tiny_wan`. It is a small model
with **random weights** that has the *architecture* of Wan2.1-T2V (same layer types,
patch size, latent channels and VAE topology) at a tiny width, laid out on disk like
the real checkpoint (layout: {layout}). Its features are meaningless; it exists so that
code, tests and demos run without downloading the real weights.

To use the real model, download Wan2.1-T2V-1.3B (original release or the diffusers
export) and pass its folder, e.g. `--model /path/to/Wan2.1-T2V-1.3B`.

Recipe: {recipe}
"""


# ----------------------------------------------------------------------------- random init


def randomize_(module: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Overwrite every parameter with deterministic random values from ``generator``.

    Matrices/kernels ~ N(0, 1/fan_in); norm scales (``gamma``, norm weights) ~ 1 + N(0, 0.1²);
    biases ~ N(0, 0.02²); modulation tables ~ N(0, 1/dim). Parameters are visited in
    sorted-name order, so the result depends only on the generator state.
    """
    params = dict(module.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "gamma" or (p.ndim == 1 and "norm" in name and leaf == "weight"):
                value = 1.0 + 0.1 * noise
            elif leaf == "bias" or p.ndim <= 1:
                value = 0.02 * noise
            elif "scale_shift_table" in name:
                value = noise / math.sqrt(p.shape[-1])
            else:
                value = noise / math.sqrt(p.numel() // p.shape[0])
            p.copy_(value.to(p.dtype))
    return module


def build_tiny_transformer(num_layers=4, dim=32, num_heads=2, ffn_dim=64, text_dim=32, freq_dim=256, generator=None):
    """A random WanTransformer3DModel with Wan2.1-T2V's architecture at a tiny width."""
    from diffusers import WanTransformer3DModel

    if dim % num_heads or (dim // num_heads) % 2:
        raise Vega3DError(f"tiny transformer: dim={dim} must split into num_heads={num_heads} heads of even size")
    with torch.random.fork_rng(devices=[]):  # module constructors draw from the global RNG; leave it untouched
        model = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=num_heads,
            attention_head_dim=dim // num_heads,
            in_channels=16,
            out_channels=16,
            text_dim=text_dim,
            freq_dim=freq_dim,
            ffn_dim=ffn_dim,
            num_layers=num_layers,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            eps=1e-6,
            rope_max_seq_len=1024,
        )
    return randomize_(model, generator or torch.Generator().manual_seed(0)).eval()


def build_tiny_vae(base_dim=8, generator=None):
    """A random AutoencoderKLWan with the Wan2.1 VAE topology (z_dim 16) at base width ``base_dim``."""
    from diffusers import AutoencoderKLWan

    with torch.random.fork_rng(devices=[]):
        vae = AutoencoderKLWan(
            base_dim=base_dim,
            z_dim=16,
            dim_mult=[1, 2, 4, 4],
            num_res_blocks=2,
            attn_scales=[],
            temperal_downsample=[False, True, True],
            latents_mean=list(WAN21_LATENTS_MEAN),
            latents_std=list(WAN21_LATENTS_STD),
        )
    return randomize_(vae, generator or torch.Generator().manual_seed(0)).eval()


# ----------------------------------------------------------------------------- inverse key maps


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


# ----------------------------------------------------------------------------- text encoder


_TOKENIZER_TEXT = [
    "a video of a room with a table and two chairs",
    "the camera moves slowly to the left",
    "an empty prompt is the single end of sequence token",
    "kitchen bedroom office living room bathroom corridor",
    "red green blue yellow white black wooden metal glass",
]


def build_tiny_tokenizer(folder: Path):
    """Train a tiny sentencepiece unigram model offline and save it as a T5 tokenizer in ``folder``.

    Special ids follow T5/umT5: pad=0, eos=1 (``</s>``), unk=2, no bos.
    """
    import sentencepiece as spm
    from transformers import T5Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(_TOKENIZER_TEXT * 4) + "\n")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(Path(tmp) / "spiece"),
            vocab_size=64,
            model_type="unigram",
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            pad_piece="<pad>",
            eos_piece="</s>",
            unk_piece="<unk>",
            character_coverage=1.0,
            num_threads=1,
            minloglevel=2,
        )
        sp = spm.SentencePieceProcessor(model_file=str(Path(tmp) / "spiece.model"))
        vocab = [(sp.id_to_piece(i), float(sp.get_score(i))) for i in range(sp.get_piece_size())]
        tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0)
        tokenizer.model_max_length = TEXT_LEN
        tokenizer.save_pretrained(folder)
        shutil.copy(Path(tmp) / "spiece.model", folder / "spiece.model")
    return tokenizer


def build_tiny_text_encoder(vocab_size: int, text_dim: int, generator: torch.Generator):
    """A random transformers UMT5EncoderModel with umT5-xxl's structure at a tiny width."""
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(
        vocab_size=vocab_size,
        d_model=text_dim,
        d_kv=8,
        d_ff=2 * text_dim,
        num_layers=2,
        num_heads=text_dim // 8,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",
        layer_norm_epsilon=1e-6,
        dropout_rate=0.0,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=1,
    )
    with torch.random.fork_rng(devices=[]):
        model = UMT5EncoderModel(config)
    model = randomize_(model, generator).eval()
    # Wan ships its T5 in bf16: round once so every layout holds identical values.
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    return model


# ----------------------------------------------------------------------------- writer


def save_tiny_wan(
    path,
    layout: str = "diffusers",
    num_layers: int = 4,
    dim: int = 32,
    *,
    num_heads: int = 2,
    ffn_dim: int | None = None,
    text_dim: int = 32,
    freq_dim: int = 256,
    vae_base_dim: int = 8,
    with_text_encoder: bool = False,
    shards: int = 1,
    seed: int = 0,
) -> Path:
    """Write a random-weight Wan2.1-T2V stand-in to ``path`` in the given layout; return the path.

    ``layout="diffusers"``: ``transformer/`` and ``vae/`` via ``save_pretrained``
    (+ ``text_encoder/`` and ``tokenizer/`` when ``with_text_encoder``).
    ``layout="original"``: ``config.json`` (``_class_name: WanModel``), the DiT in
    ``diffusion_pytorch_model.safetensors`` (or ``shards`` shards + index) under Wan's
    original key names, ``Wan2.1_VAE.pth`` (original VAE names), and with a text encoder
    ``models_t5_umt5-xxl-enc-bf16.pth`` + ``google/umt5-xxl/``.
    Without a text encoder a ``prompt_embedding.safetensors`` (random, one row — the
    length of the real empty prompt, which is the single token ``</s>``) is written so
    the folder loads without one. Same arguments → same weights, for both layouts.
    """
    if layout not in ("diffusers", "original"):
        raise Vega3DError(f"layout: got {layout!r}; expected 'diffusers' or 'original'")
    if shards < 1 or (shards > 1 and layout != "original"):
        raise Vega3DError(f"shards: got {shards}; expected 1, or >1 with layout='original'")
    ffn_dim = ffn_dim or 2 * dim
    root = Path(path).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    transformer = build_tiny_transformer(num_layers, dim, num_heads, ffn_dim, text_dim, freq_dim, gen)
    vae = build_tiny_vae(vae_base_dim, gen)
    recipe = dict(
        layout=layout, num_layers=num_layers, dim=dim, num_heads=num_heads, ffn_dim=ffn_dim, text_dim=text_dim,
        freq_dim=freq_dim, vae_base_dim=vae_base_dim, with_text_encoder=with_text_encoder, shards=shards, seed=seed,
    )  # fmt: skip

    if layout == "diffusers":
        transformer.save_pretrained(root / "transformer", safe_serialization=True)
        vae.save_pretrained(root / "vae", safe_serialization=True)
    else:
        _write_original_dit(root, transformer, shards)
        torch.save(to_original_vae_keys(vae.state_dict()), root / ORIGINAL_VAE)

    if with_text_encoder:
        tok_dir = root / ("tokenizer" if layout == "diffusers" else ORIGINAL_TOKENIZER)
        tokenizer = build_tiny_tokenizer(tok_dir)
        encoder = build_tiny_text_encoder(len(tokenizer), text_dim, gen)
        if layout == "diffusers":
            encoder.save_pretrained(root / "text_encoder", safe_serialization=True)
        else:
            sd = {k: v.to(torch.bfloat16) for k, v in to_original_t5_keys(encoder.state_dict()).items()}
            torch.save(sd, root / ORIGINAL_T5)
    else:
        from vega3d.simulator.prompt import save_prompt_embedding

        emb = torch.randn(1, text_dim, generator=gen)
        save_prompt_embedding(
            emb, root / PROMPT_FILE, metadata={"source": "random stand-in (not a umT5 output)", "text": "", "seed": seed}
        )
    (root / STAND_IN_MARKER).write_text(_MARKER_TEXT.format(layout=layout, recipe=json.dumps(recipe)))
    return root


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


# ----------------------------------------------------------------------------- built-in default


def default_model_dir() -> Path:
    """The built-in stand-in (30 blocks, tiny width, diffusers layout), built on first use.

    Lives in ``$XDG_CACHE_HOME/vega3d`` (or ``~/.cache/vega3d``) under a versioned name;
    built in a temporary sibling folder and renamed into place, so concurrent callers
    never see a half-written model.
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cache = Path(base) / "vega3d"
    target = cache / f"tiny-wan2.1-standin-v{DEFAULT_MODEL_VERSION}"
    if (target / STAND_IN_MARKER).is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=cache))
    try:
        save_tiny_wan(tmp, layout="diffusers", **DEFAULT_MODEL_KWARGS)
        try:
            tmp.rename(target)
        except OSError:
            # Another process won the race (fine), or a foreign folder is in the way.
            if not (target / STAND_IN_MARKER).is_file():
                raise Vega3DError(
                    f"{target}: exists but is not a complete vega3d stand-in (no {STAND_IN_MARKER}); delete it "
                    "and it will be rebuilt"
                ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
