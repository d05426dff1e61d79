"""Tiny random-weight stand-ins for Wan2.1-T2V, in the diffusers layout.

A stand-in has Wan2.1-T2V's architecture (DiT patch (1, 2, 2), 16 latent channels, the Wan2.1
VAE topology with z_dim 16, optionally a umT5 text encoder) at a tiny width and random weights
drawn from an explicit ``torch.Generator`` (same ``seed`` → same bytes). It is NOT Wan2.1: its
features mean nothing, and its folder says so (:mod:`vega3d.standin`). The tests write the
original-release layout from the same builders (tests/original_layout.py).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import torch

from vega3d.errors import Vega3DError
from vega3d.files import cache_dir
from vega3d.simulator.convert import WAN21_LATENTS_MEAN, WAN21_LATENTS_STD
from vega3d.simulator.prompt import PROMPT_FILE, TEXT_LEN
from vega3d.standin import MARKER, write_marker

#: Version of the built-in default stand-in; bump when its recipe changes.
DEFAULT_MODEL_VERSION = 2
#: The built-in default: 30 blocks like Wan2.1-T2V-1.3B (so block 20 exists), tiny width.
DEFAULT_MODEL_KWARGS = dict(num_layers=30, dim=64, num_heads=4, ffn_dim=128, text_dim=64, vae_base_dim=8, seed=0)


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


class TinyWanModules(NamedTuple):
    """:func:`build_tiny_wan`'s modules, the generator that goes on drawing (text encoder / prompt
    embedding) and the recipe (every size resolved) a stand-in's marker records."""

    transformer: torch.nn.Module
    vae: torch.nn.Module
    generator: torch.Generator
    recipe: dict


def build_tiny_wan(
    num_layers: int = 4,
    dim: int = 32,
    *,
    num_heads: int = 2,
    ffn_dim: int | None = None,
    text_dim: int = 32,
    freq_dim: int = 256,
    vae_base_dim: int = 8,
    seed: int = 0,
) -> TinyWanModules:
    """The random modules of a tiny Wan2.1-T2V stand-in, in the order they are drawn from
    ``torch.Generator().manual_seed(seed)`` (``ffn_dim``: 2 x ``dim`` by default)."""
    recipe = dict(num_layers=num_layers, dim=dim, num_heads=num_heads, ffn_dim=ffn_dim or 2 * dim, text_dim=text_dim,
                  freq_dim=freq_dim, vae_base_dim=vae_base_dim, seed=seed)  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    transformer = build_tiny_transformer(num_layers, dim, num_heads, recipe["ffn_dim"], text_dim, freq_dim, gen)
    return TinyWanModules(transformer, build_tiny_vae(vae_base_dim, gen), gen, recipe)


def save_tiny_wan(path, num_layers: int = 4, dim: int = 32, *, with_text_encoder: bool = False, **sizes) -> Path:
    """Write a random-weight Wan2.1-T2V stand-in to ``path`` in the diffusers layout; return the path.
    ``sizes``: the other arguments of :func:`build_tiny_wan` (``num_heads``, ``ffn_dim``,
    ``text_dim``, ``freq_dim``, ``vae_base_dim``, ``seed``).

    ``transformer/`` and ``vae/`` via ``save_pretrained`` (+ ``text_encoder/`` and ``tokenizer/``
    when ``with_text_encoder``). Without a text encoder a ``prompt_embedding.safetensors``
    (random, one row — the length of the real empty prompt, the single token ``</s>``) is written
    so the folder loads without one. Same arguments → same bytes.
    """
    root = Path(path).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    transformer, vae, gen, recipe = build_tiny_wan(num_layers, dim, **sizes)
    transformer.save_pretrained(root / "transformer", safe_serialization=True)
    vae.save_pretrained(root / "vae", safe_serialization=True)
    if with_text_encoder:
        tokenizer = build_tiny_tokenizer(root / "tokenizer")
        build_tiny_text_encoder(len(tokenizer), recipe["text_dim"], gen).save_pretrained(root / "text_encoder")
    else:
        write_random_prompt_embedding(root / PROMPT_FILE, recipe["text_dim"], gen, recipe["seed"])
    recipe = {**recipe, "with_text_encoder": with_text_encoder}
    write_marker(root, real="Wan2.1-T2V", writer="vega3d.standin.wan.save_tiny_wan", recipe=recipe)
    return root


def write_random_prompt_embedding(path: Path, text_dim: int, generator: torch.Generator, seed: int) -> None:
    """A random one-row stand-in for the empty-prompt context (the real one is umT5's output)."""
    from vega3d.simulator.prompt import save_prompt_embedding

    metadata = {"source": "random stand-in (not a umT5 output)", "text": "", "seed": seed}
    save_prompt_embedding(torch.randn(1, text_dim, generator=generator), path, metadata=metadata)


# ----------------------------------------------------------------------------- built-in default


def default_model_dir() -> Path:
    """The built-in stand-in (30 blocks, tiny width, diffusers layout), built on first use.

    Lives in vega3d's cache folder (:func:`vega3d.files.cache_dir`: ``$VEGA3D_CACHE``, else
    ``$XDG_CACHE_HOME/vega3d`` or ``~/.cache/vega3d``) under a versioned name; built in a
    temporary sibling folder and renamed into place, so concurrent callers never see a
    half-written model.
    """
    cache = cache_dir()
    target = cache / f"tiny-wan2.1-standin-v{DEFAULT_MODEL_VERSION}"
    if (target / MARKER).is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=cache))
    try:
        save_tiny_wan(tmp, **DEFAULT_MODEL_KWARGS)
        try:
            tmp.rename(target)
        except OSError:
            # Another process won the race (fine), or a foreign folder is in the way.
            if not (target / MARKER).is_file():
                raise Vega3DError(
                    f"{target}: exists but is not a complete vega3d stand-in (no {MARKER}); delete it "
                    "and it will be rebuilt"
                ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
