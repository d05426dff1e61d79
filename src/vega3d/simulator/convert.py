"""Read the original Wan2.1 release files into diffusers / transformers modules.

* DiT: ``config.json`` (``WanModel``) is mapped onto ``WanTransformer3DModel``'s config
  (:func:`transformer_config_from_original`; ``text_dim`` and ``patch_size`` are not in
  the released config, so they are read off the weights); keys are renamed by
  diffusers' own ``convert_wan_transformer_to_diffusers``.
* VAE: ``Wan2.1_VAE.pth`` has no config; the (standard Wan2.1) topology is read off the
  weights (:func:`vae_config_from_original`) and keys are renamed by diffusers'
  ``convert_wan_vae_to_diffusers``. The latent mean/std of this layout are Wan2.1's
  published constants (:data:`WAN21_LATENTS_MEAN`, :data:`WAN21_LATENTS_STD`).
* Text encoder: ``models_t5_umt5-xxl-enc-bf16.pth`` is Wan's own ``T5Encoder`` state
  dict; :data:`T5_TO_HF` maps it onto transformers' ``UMT5EncoderModel``, whose config
  is read off the weights (:func:`t5_config_from_original`).

The DiT and the VAE are built from a locally constructed config on the meta device (no hub,
no random init) and the converted state dict is loaded strictly; the text encoder goes
through transformers' own ``from_pretrained(config=, state_dict=)`` (its dtype rules) and its
loading report. Any missing or unexpected key, or a wrong shape, is a :class:`Vega3DError`
naming the file. The modules come back in float32 on the CPU; the caller casts them
(:mod:`vega3d.simulator.layouts`). Only this module knows the original file names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from vega3d.config import FileRecord, SafetensorsIndex, parse
from vega3d.errors import Vega3DError
from vega3d.files import read_json, read_state_dict
from vega3d.simulator.checks import check
from vega3d.simulator.prompt import TEXT_LEN

ORIGINAL_CONFIG = "config.json"
ORIGINAL_DIT_SINGLE = "diffusion_pytorch_model.safetensors"
ORIGINAL_DIT_INDEX = "diffusion_pytorch_model.safetensors.index.json"
ORIGINAL_VAE = "Wan2.1_VAE.pth"
ORIGINAL_T5 = "models_t5_umt5-xxl-enc-bf16.pth"
ORIGINAL_TOKENIZER = "google/umt5-xxl"

# Wan2.1's published latent statistics (16 channels). Sources: Wan's own code,
# wan/modules/vae.py, class WanVAE.__init__ (`mean`, `std`); the same values are the
# defaults of diffusers' AutoencoderKLWan.__init__ (`latents_mean`, `latents_std`).
# Used ONLY for the original layout, whose Wan2.1_VAE.pth carries no config.
WAN21_LATENTS_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN21_LATENTS_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip

#: Wan T5Encoder key (``{i}`` = layer) → transformers UMT5EncoderModel key.
T5_TO_HF = (
    ("token_embedding.weight", "shared.weight"),
    ("blocks.{i}.norm1.weight", "encoder.block.{i}.layer.0.layer_norm.weight"),
    ("blocks.{i}.attn.q.weight", "encoder.block.{i}.layer.0.SelfAttention.q.weight"),
    ("blocks.{i}.attn.k.weight", "encoder.block.{i}.layer.0.SelfAttention.k.weight"),
    ("blocks.{i}.attn.v.weight", "encoder.block.{i}.layer.0.SelfAttention.v.weight"),
    ("blocks.{i}.attn.o.weight", "encoder.block.{i}.layer.0.SelfAttention.o.weight"),
    (
        "blocks.{i}.pos_embedding.embedding.weight",
        "encoder.block.{i}.layer.0.SelfAttention.relative_attention_bias.weight",
    ),
    ("blocks.{i}.norm2.weight", "encoder.block.{i}.layer.1.layer_norm.weight"),
    ("blocks.{i}.ffn.gate.0.weight", "encoder.block.{i}.layer.1.DenseReluDense.wi_0.weight"),
    ("blocks.{i}.ffn.fc1.weight", "encoder.block.{i}.layer.1.DenseReluDense.wi_1.weight"),
    ("blocks.{i}.ffn.fc2.weight", "encoder.block.{i}.layer.1.DenseReluDense.wo.weight"),
    ("norm.weight", "encoder.final_layer_norm.weight"),
)


# ----------------------------------------------------------------------------- files


class WanModelConfig(FileRecord):
    """The fields of a released Wan2.1 ``config.json`` (``WanModel``) that the DiT's config is mapped from."""

    class_name: Literal["WanModel"] = Field(alias="_class_name")  # Wan's own DiT class (original layout)
    model_type: Literal["t2v"] = "t2v"  # Wan2.1 text-to-video
    dim: int = Field(ge=1)  # hidden width: num_heads whole heads (checked with the weights)
    ffn_dim: int = Field(ge=1)
    freq_dim: int = Field(ge=1)
    in_dim: int = Field(ge=1)  # latent channels in: the VAE's z_dim
    out_dim: int = Field(ge=1)
    num_heads: int = Field(ge=1)
    num_layers: int = Field(ge=1)
    text_dim: int | None = None  # not in the release: read off the weights (must agree when given)
    text_len: int = Field(TEXT_LEN, ge=1)  # context rows
    eps: float = Field(1e-6, gt=0)


def index_shards(index: Path) -> list[str]:
    """The shard file names a ``*.safetensors.index.json`` lists (sorted, each once)."""
    data = parse(SafetensorsIndex, read_json(index, "safetensors index"), str(index))
    return sorted(set(data.weight_map.values()))


def original_dit_files(root: Path) -> list[Path]:
    """The DiT safetensors file(s) of a complete original-layout folder, in shard order."""
    index = root / ORIGINAL_DIT_INDEX
    names = index_shards(index) if index.is_file() else [ORIGINAL_DIT_SINGLE]
    return [root / n for n in names]


def _dit_tensors(root: Path, *, header_only: bool = False) -> dict:
    """The DiT's tensors (all shards); ``header_only``: meta tensors of the right shapes, read
    from the safetensors headers alone (no weights read)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    out = {}
    for f in original_dit_files(root):
        try:
            if not header_only:
                out.update(load_file(str(f)))
                continue
            with safe_open(str(f), "pt") as fh:
                out.update({k: torch.empty(fh.get_slice(k).get_shape(), device="meta") for k in fh.keys()})
        except (SafetensorError, OSError) as err:
            raise Vega3DError(f"{f}: not a readable safetensors file ({err})") from None
    return out


def _require(sd: dict, keys, where: Path, what: str) -> None:
    missing = [k for k in keys if k not in sd]
    check(not missing, str(where), f"missing key(s) {', '.join(missing)}", what)


# ----------------------------------------------------------------------------- strict loading


def load_converted(build, state_dict: dict, where: Path, what: str):
    """Call ``build()`` without allocating weights (meta device) and load ``state_dict`` strictly."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = build()
    expected, got = set(model.state_dict()), set(state_dict)
    problem = _key_problems(missing_keys=expected - got, unexpected_keys=got - expected)
    if problem:
        problem += " (after key conversion)"
    else:
        try:
            model.load_state_dict(state_dict, strict=True, assign=True)
            return model
        except RuntimeError as err:
            problem = f"tensor shapes do not match: {err}"
    raise Vega3DError(f"{where}: {problem}; expected exactly the keys and shapes of {what}")


def from_pretrained_strict(load, where: Path, what: str, library: str):
    """``load()`` → ``(model, loading_info)`` of a diffusers/transformers ``from_pretrained(...,
    output_loading_info=True)``; any missing, unexpected or mis-shaped weight (which the library
    would only warn about) is a :class:`Vega3DError` naming ``where``."""
    try:
        model, info = load()
    except (OSError, ValueError, RuntimeError, KeyError, NotImplementedError) as err:
        problem = f"{library} could not load {what}: {type(err).__name__}: {err}"
    else:
        names = ("missing_keys", "unexpected_keys", "mismatched_keys")
        problem = _key_problems(**{name: info.get(name) or [] for name in names})
        if not problem:
            return model
        problem = f"weights do not match: {problem}; expected exactly the weights of {what}"
    raise Vega3DError(f"{where}: {problem}")


def _key_problems(**keys) -> str:
    """``"2 missing keys (e.g. a, b) and 1 unexpected keys (e.g. c)"`` for the non-empty lists."""
    problems = []
    for name, found in keys.items():
        found = sorted(str(k) for k in found)
        if found:
            problems.append(f"{len(found)} {name.replace('_', ' ')} (e.g. {', '.join(found[:5])})")
    return " and ".join(problems)


# ----------------------------------------------------------------------------- DiT


def original_transformer_config(root: Path) -> tuple[dict, int, dict]:
    """``(WanTransformer3DModel config, text_len, the released config)`` of an original-layout
    folder, read from ``config.json`` and the DiT's safetensors headers (no weights read)."""
    config = read_json(root / ORIGINAL_CONFIG, "Wan2.1 config")
    mapped = transformer_config_from_original(config, _dit_tensors(root, header_only=True), root / ORIGINAL_CONFIG)
    return mapped, int(config.get("text_len", TEXT_LEN)), config  # checked by the mapping


def transformer_config_from_original(config: dict, state_dict: dict, where: Path) -> dict:
    """Map a released ``WanModel`` config.json (+ its weights' shapes) onto WanTransformer3DModel's config."""
    cfg = parse(WanModelConfig, config, str(where))
    _require(state_dict, ["patch_embedding.weight", "text_embedding.0.weight"], where.parent, "a Wan2.1 DiT state dict")
    text_dim = int(state_dict["text_embedding.0.weight"].shape[1])
    problems = [f"dim={cfg.dim} is not divisible by num_heads={cfg.num_heads}"] if cfg.dim % cfg.num_heads else []
    if cfg.text_dim not in (None, text_dim):
        problems.append(f"text_dim={cfg.text_dim} but the weights have text_dim={text_dim}")
    check(not problems, str(where), "; ".join(problems), "whole attention heads and the weights' text_dim")
    patch = tuple(int(s) for s in state_dict["patch_embedding.weight"].shape[2:])
    return {
        "patch_size": list(patch),
        "num_attention_heads": cfg.num_heads,
        "attention_head_dim": cfg.dim // cfg.num_heads,
        "in_channels": cfg.in_dim,
        "out_channels": cfg.out_dim,
        "text_dim": text_dim,
        "freq_dim": cfg.freq_dim,
        "ffn_dim": cfg.ffn_dim,
        "num_layers": cfg.num_layers,
        "cross_attn_norm": "blocks.0.norm3.weight" in state_dict,
        "qk_norm": "rms_norm_across_heads" if "blocks.0.self_attn.norm_q.weight" in state_dict else None,
        "eps": cfg.eps,
        "image_dim": None,
        "added_kv_proj_dim": None,
        "rope_max_seq_len": 1024,
    }


def load_original_transformer(root: Path, config: dict):
    """WanTransformer3DModel (float32, CPU) with ``config`` (:func:`original_transformer_config`)."""
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    converted = convert_wan_transformer_to_diffusers(_dit_tensors(root))
    where = root / "diffusion_pytorch_model*.safetensors"
    return load_converted(lambda: WanTransformer3DModel.from_config(config), converted, where, "WanTransformer3DModel")


# ----------------------------------------------------------------------------- VAE


def vae_config_from_original(state_dict: dict, where: Path) -> dict:
    """AutoencoderKLWan config for a ``Wan2.1_VAE.pth`` state dict, read off the weights.

    Base width from ``encoder.conv1.weight`` (out channels), z_dim from the latent
    1×1 conv ``conv2.weight``, temporal downsampling from which encoder resample
    blocks carry a ``time_conv``. Multipliers (1, 2, 4, 4) and 2 residual blocks per
    stage are the Wan2.1 topology; anything else fails the strict key/shape check.
    The latent mean/std are Wan2.1's published 16-channel statistics, so z_dim must be 16.
    """
    _require(
        state_dict,
        ["encoder.conv1.weight", "conv1.weight", "conv2.weight", "decoder.middle.0.residual.0.gamma"],
        where,
        "a Wan2.1 VAE state dict",
    )
    base_dim = int(state_dict["encoder.conv1.weight"].shape[0])
    z_dim = int(state_dict["conv2.weight"].shape[0])
    conv1, n = tuple(state_dict["conv1.weight"].shape), len(WAN21_LATENTS_MEAN)
    check(
        z_dim == n and conv1[:2] == (2 * n, 2 * n),
        str(where),
        f"z_dim={z_dim} (conv2.weight) and conv1.weight of shape {conv1}",
        f"z_dim={n} (Wan2.1's published latent statistics) and conv1.weight of shape ({2 * n}, {2 * n}, 1, 1, 1)",
    )
    # Encoder resample blocks sit after each stage's 2 residual blocks: downsamples.2, .5, .8.
    temporal = [f"encoder.downsamples.{i}.time_conv.weight" in state_dict for i in (2, 5, 8)]
    return {
        "base_dim": base_dim,
        "z_dim": z_dim,
        "dim_mult": [1, 2, 4, 4],
        "num_res_blocks": 2,
        "attn_scales": [],
        "temperal_downsample": temporal,
        "dropout": 0.0,
        "latents_mean": list(WAN21_LATENTS_MEAN),
        "latents_std": list(WAN21_LATENTS_STD),
    }


def load_original_vae(path: Path):
    """AutoencoderKLWan (float32, CPU) from ``Wan2.1_VAE.pth``."""
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    state = read_state_dict(path)
    config = vae_config_from_original(state, path)
    converted = convert_wan_vae_to_diffusers(state)
    what = f"the Wan2.1 VAE topology (base width {config['base_dim']}, z_dim {config['z_dim']}, AutoencoderKLWan)"
    return load_converted(lambda: AutoencoderKLWan.from_config(config), converted, path, what)


def load_original(root: Path, dit_config: dict):
    """``(transformer, vae)`` of an original-layout folder, float32 on the CPU.

    ``dit_config``: the DiT's mapped config (:func:`original_transformer_config`). The
    latent mean/std of this layout are :data:`WAN21_LATENTS_MEAN` / :data:`WAN21_LATENTS_STD`."""
    transformer = load_original_transformer(root, dit_config)
    vae = load_original_vae(root / ORIGINAL_VAE)
    in_dim, z_dim = transformer.config.in_channels, vae.config.z_dim
    check(in_dim == z_dim, str(root), f"DiT in_dim={in_dim}", f"the VAE's z_dim={z_dim}")
    return transformer, vae


# ----------------------------------------------------------------------------- text encoder


def _t5_layers(state_dict: dict) -> int:
    layers = {int(m.group(1)) for k in state_dict if (m := re.match(r"blocks\.(\d+)\.", k))}
    return max(layers) + 1 if layers else 0


def t5_config_from_original(state_dict: dict, where: Path) -> dict:
    """UMT5Config fields for Wan's T5Encoder state dict, read off the weights.

    For ``models_t5_umt5-xxl-enc-bf16.pth`` this gives umT5-xxl's encoder: vocab 256384,
    d_model 4096, 24 layers, 64 heads of d_kv 64, d_ff 10240, 32 relative buckets
    (one bias table per layer), gated tanh-GELU, eps 1e-6 (Wan's ``umt5_xxl``).
    """
    _require(
        state_dict,
        [
            "token_embedding.weight",
            "blocks.0.attn.q.weight",
            "blocks.0.pos_embedding.embedding.weight",
            "blocks.0.ffn.fc1.weight",
            "norm.weight",
        ],
        where,
        "a Wan umT5 encoder state dict (per-layer relative position bias)",
    )
    vocab, d_model = state_dict["token_embedding.weight"].shape
    buckets, heads = state_dict["blocks.0.pos_embedding.embedding.weight"].shape
    dim_attn = state_dict["blocks.0.attn.q.weight"].shape[0]
    check(dim_attn % heads == 0, str(where), f"attention width {dim_attn}", f"a multiple of the {heads} heads")
    return dict(
        vocab_size=int(vocab),
        d_model=int(d_model),
        d_kv=int(dim_attn // heads),
        d_ff=int(state_dict["blocks.0.ffn.fc1.weight"].shape[0]),
        num_layers=_t5_layers(state_dict),
        num_heads=int(heads),
        relative_attention_num_buckets=int(buckets),
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",  # Wan's T5FeedForward: fc1(x) * tanh-GELU(gate(x))
        layer_norm_epsilon=1e-6,
        dropout_rate=0.0,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=1,
    )


def t5_keys_to_hf(state_dict: dict) -> dict:
    """Rename Wan T5Encoder keys to UMT5EncoderModel keys; a key :data:`T5_TO_HF` does not know is
    kept as it is, and the strict load (:func:`from_pretrained_strict`) reports it as unexpected."""
    patterns = [(re.compile("^" + re.escape(w).replace(r"\{i\}", r"(\d+)") + "$"), hf) for w, hf in T5_TO_HF]
    out = {}
    for key, value in state_dict.items():
        for pattern, hf in patterns:
            m = pattern.match(key)
            if m:
                out[hf.replace("{i}", m.group(1)) if m.groups() else hf] = value
                break
        else:
            out[key] = value
    if "shared.weight" in out:
        out["encoder.embed_tokens.weight"] = out["shared.weight"]  # tied in UMT5EncoderModel
    return out


def load_original_text_encoder(path: Path, dtype=torch.float32):
    """transformers UMT5EncoderModel (eval, in ``dtype`` by transformers' own rules) from Wan's
    ``models_t5_umt5-xxl-enc-bf16.pth``."""
    from transformers import UMT5Config, UMT5EncoderModel

    state = read_state_dict(path)
    config = UMT5Config(**t5_config_from_original(state, path))
    converted = t5_keys_to_hf(state)
    return from_pretrained_strict(
        lambda: UMT5EncoderModel.from_pretrained(
            None, config=config, state_dict=converted, dtype=dtype, output_loading_info=True
        ),
        path,
        "a umT5 encoder (UMT5EncoderModel)",
        "transformers",
    )
