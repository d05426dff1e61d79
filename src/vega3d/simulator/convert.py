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

Models are built from a locally constructed config on the meta device (no hub, no
random init) and the converted state dict is loaded strictly: any missing or unexpected
key, or a wrong shape, is a :class:`Vega3DError` naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from vega3d.errors import Vega3DError
from vega3d.files import read_json
from vega3d.simulator.layouts import (
    ORIGINAL_CONFIG,
    ORIGINAL_VAE,
    TEXT_LEN,
    _freeze,
    _jsonable,
    cast_like_diffusers,
    original_dit_files,
)

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


# ----------------------------------------------------------------------------- shared helpers


def _require(sd: dict, keys, where: Path, what: str) -> None:
    missing = [k for k in keys if k not in sd]
    if missing:
        raise Vega3DError(f"{where}: not {what}: missing key(s) {', '.join(missing)}")


def load_converted(build, state_dict: dict, where: Path, what: str):
    """Call ``build()`` without allocating weights (meta device) and load ``state_dict`` strictly."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = build()
    expected = set(model.state_dict())
    got = set(state_dict)
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) (e.g. {', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {', '.join(unexpected[:5])})")
        raise Vega3DError(f"{where}: does not match {what} (after key conversion): {'; '.join(parts)}")
    try:
        model.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as err:
        raise Vega3DError(f"{where}: tensor shapes do not match {what}: {err}") from None
    return model


def _torch_load(path: Path) -> dict:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 — any unreadable file is bad input
        raise Vega3DError(
            f"{path}: cannot be read as a weights-only torch checkpoint ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise Vega3DError(f"{path}: expected a flat state dict (name → tensor), found {type(sd).__name__}")
    return sd


# ----------------------------------------------------------------------------- DiT


def transformer_config_from_original(config: dict, state_dict: dict, where: Path) -> dict:
    """Map a released ``WanModel`` config.json (+ its weights) onto WanTransformer3DModel's config."""
    if config.get("_class_name") != "WanModel":
        raise Vega3DError(f"{where}: _class_name is {config.get('_class_name')!r}; expected 'WanModel'")
    if config.get("model_type", "t2v") != "t2v":
        raise Vega3DError(f"{where}: model_type is {config['model_type']!r}; expected 't2v' (Wan2.1 text-to-video)")
    required = ("dim", "ffn_dim", "freq_dim", "in_dim", "out_dim", "num_heads", "num_layers")
    missing = [k for k in required if k not in config]
    if missing:
        raise Vega3DError(f"{where}: missing field(s) {', '.join(missing)} (expected a WanModel config)")
    dim, heads = int(config["dim"]), int(config["num_heads"])
    if dim % heads:
        raise Vega3DError(f"{where}: dim={dim} is not divisible by num_heads={heads}")
    _require(state_dict, ["patch_embedding.weight", "text_embedding.0.weight"], where.parent, "a Wan2.1 DiT state dict")
    text_dim = int(state_dict["text_embedding.0.weight"].shape[1])
    if "text_dim" in config and int(config["text_dim"]) != text_dim:
        raise Vega3DError(f"{where}: text_dim={config['text_dim']} but the weights have text_dim={text_dim}")
    patch = tuple(int(s) for s in state_dict["patch_embedding.weight"].shape[2:])
    return {
        "patch_size": list(patch),
        "num_attention_heads": heads,
        "attention_head_dim": dim // heads,
        "in_channels": int(config["in_dim"]),
        "out_channels": int(config["out_dim"]),
        "text_dim": text_dim,
        "freq_dim": int(config["freq_dim"]),
        "ffn_dim": int(config["ffn_dim"]),
        "num_layers": int(config["num_layers"]),
        "cross_attn_norm": "blocks.0.norm3.weight" in state_dict,
        "qk_norm": "rms_norm_across_heads" if "blocks.0.self_attn.norm_q.weight" in state_dict else None,
        "eps": float(config.get("eps", 1e-6)),
        "image_dim": None,
        "added_kv_proj_dim": None,
        "rope_max_seq_len": 1024,
    }


def load_original_transformer(root: Path):
    """(WanTransformer3DModel in float32, text_len, original config) from an original-layout folder."""
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg_path = root / ORIGINAL_CONFIG
    config = read_json(cfg_path, "Wan2.1 config")
    state = {}
    for f in original_dit_files(root):
        try:
            state.update(load_file(str(f)))
        except (SafetensorError, OSError) as err:
            raise Vega3DError(f"{f}: not a readable safetensors file ({err})") from None
    diffusers_config = transformer_config_from_original(config, state, cfg_path)
    converted = convert_wan_transformer_to_diffusers(state)
    where = original_dit_files(root)[0].parent / "diffusion_pytorch_model*.safetensors"
    model = load_converted(
        lambda: WanTransformer3DModel.from_config(diffusers_config), converted, where, "WanTransformer3DModel"
    )
    return model, int(config.get("text_len", TEXT_LEN)), config


# ----------------------------------------------------------------------------- VAE


def vae_config_from_original(state_dict: dict, where: Path) -> dict:
    """AutoencoderKLWan config for a ``Wan2.1_VAE.pth`` state dict, read off the weights.

    Base width from ``encoder.conv1.weight`` (out channels), z_dim from the latent
    1×1 conv ``conv2.weight``, temporal downsampling from which encoder resample
    blocks carry a ``time_conv``. Multipliers (1, 2, 4, 4) and 2 residual blocks per
    stage are the Wan2.1 topology; anything else fails the strict key/shape check.
    """
    _require(
        state_dict,
        ["encoder.conv1.weight", "conv1.weight", "conv2.weight", "decoder.middle.0.residual.0.gamma"],
        where,
        "a Wan2.1 VAE state dict",
    )
    base_dim = int(state_dict["encoder.conv1.weight"].shape[0])
    z_dim = int(state_dict["conv2.weight"].shape[0])
    if tuple(state_dict["conv1.weight"].shape[:2]) != (2 * z_dim, 2 * z_dim):
        raise Vega3DError(
            f"{where}: conv1.weight has shape {tuple(state_dict['conv1.weight'].shape)}; expected "
            f"({2 * z_dim}, {2 * z_dim}, 1, 1, 1) for z_dim={z_dim} (from conv2.weight)"
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
    """(AutoencoderKLWan in float32, its config) from ``Wan2.1_VAE.pth``."""
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    state = _torch_load(path)
    config = vae_config_from_original(state, path)
    converted = convert_wan_vae_to_diffusers(state)
    what = f"the Wan2.1 VAE topology (base width {config['base_dim']}, z_dim {config['z_dim']}, AutoencoderKLWan)"
    return load_converted(lambda: AutoencoderKLWan.from_config(config), converted, path, what), config


def load_original(root: Path, dtype, device):
    """Load the DiT and VAE of an original-layout folder; same return as the diffusers loader."""
    transformer, text_len, original_config = load_original_transformer(root)
    vae, vae_config = load_original_vae(root / ORIGINAL_VAE)
    if vae_config["z_dim"] != len(WAN21_LATENTS_MEAN):
        raise Vega3DError(
            f"{root / ORIGINAL_VAE}: z_dim={vae_config['z_dim']}; Wan2.1's published latent statistics have "
            f"{len(WAN21_LATENTS_MEAN)} channels"
        )
    if transformer.config.in_channels != vae_config["z_dim"]:
        raise Vega3DError(
            f"{root}: DiT in_dim={transformer.config.in_channels} does not match the VAE's z_dim={vae_config['z_dim']}"
        )
    mean = torch.tensor(WAN21_LATENTS_MEAN, dtype=torch.float32)
    std = torch.tensor(WAN21_LATENTS_STD, dtype=torch.float32)
    configs = {
        "original": original_config,
        "transformer": _jsonable(transformer.config),
        "vae": _jsonable(vae.config),
    }
    transformer = _freeze(cast_like_diffusers(transformer, dtype), device)
    vae = _freeze(cast_like_diffusers(vae, dtype), device)
    return transformer, vae, mean, std, text_len, configs


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
    if dim_attn % heads:
        raise Vega3DError(f"{where}: attention width {dim_attn} is not divisible by {heads} heads")
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


def t5_keys_to_hf(state_dict: dict, where: Path) -> dict:
    """Rename Wan T5Encoder keys to UMT5EncoderModel keys (unknown keys are an error)."""
    patterns = [(re.compile("^" + re.escape(w).replace(r"\{i\}", r"(\d+)") + "$"), hf) for w, hf in T5_TO_HF]
    out, unknown = {}, []
    for key, value in state_dict.items():
        for pattern, hf in patterns:
            m = pattern.match(key)
            if m:
                out[hf.replace("{i}", m.group(1)) if m.groups() else hf] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise Vega3DError(f"{where}: unexpected key(s) for a Wan umT5 encoder: {', '.join(sorted(unknown)[:5])}")
    if "shared.weight" in out:
        out["encoder.embed_tokens.weight"] = out["shared.weight"]  # tied in UMT5EncoderModel
    return out


def load_original_text_encoder(path: Path, dtype=torch.float32):
    """transformers UMT5EncoderModel (eval) from Wan's ``models_t5_umt5-xxl-enc-bf16.pth``."""
    from transformers import UMT5Config, UMT5EncoderModel

    state = _torch_load(path)
    config = UMT5Config(**t5_config_from_original(state, path))
    model = load_converted(
        lambda: UMT5EncoderModel(config), t5_keys_to_hf(state, path), path, "a umT5 encoder (UMT5EncoderModel)"
    )
    model.tie_weights()
    return _cast_like_transformers(model, dtype)


def _cast_like_transformers(model, dtype):
    """Cast as transformers' ``from_pretrained(dtype=...)`` does: tensors of
    ``_keep_in_fp32_modules`` (T5's ``wo``) stay float32 for float16, those of
    ``_keep_in_fp32_modules_strict`` for both 16-bit dtypes; everything else goes to ``dtype``."""
    keep = set()
    if dtype == torch.float16:
        keep |= set(getattr(model, "_keep_in_fp32_modules", None) or [])
    if dtype in (torch.float16, torch.bfloat16):
        keep |= set(getattr(model, "_keep_in_fp32_modules_strict", None) or [])
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if t.is_floating_point():
                t.data = t.data.to(torch.float32 if any(k in name.split(".") for k in keep) else dtype)
    return model
