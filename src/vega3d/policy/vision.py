"""The fused DINOv2 + SigLIP vision backbone of OpenVLA-OFT, on transformers' own ViT modules.

Prismatic builds both towers with timm (``timm.create_model(id, num_classes=0, img_size=224)``)
and takes the **second-to-last block's** output without the final norm
(``get_intermediate_layers(n={depth - 2})``), prefix tokens dropped: 256 patch tokens per 224²
image from each tower, concatenated along channels (DINOv2 first: 1024 + 1152 = 2176).

vega3d builds the same architectures with transformers' ``Dinov2WithRegistersModel`` and
``SiglipVisionModel`` (timm is not a dependency: every timm release imports torchvision at
import time). The two implementations compute the same function: same patch embedding,
token order ``[cls, registers, patches]`` (DINOv2) / ``[patches]`` (SigLIP), pre-norm blocks
with LayerScale (DINOv2), exact-erf GELU (timm's default, which OpenVLA keeps for SigLIP),
LayerNorm eps 1e-6. tests/policy/test_vision.py checks this against timm's own forward where
timm can be imported.

Key maps (:func:`timm_to_hf` / :func:`hf_to_timm`, exact both ways):

- timm's fused ``attn.qkv`` (rows q; k; v) <-> transformers' separate q/k/v projections;
- DINOv2's ``pos_embed`` (256 patch positions; timm adds none to the class token,
  ``no_embed_class``) <-> ``position_embeddings`` rows 1..256, row 0 (the class token's) zero;
- prismatic saves LayerScale ``gamma`` as ``scale_factor`` (``ls_apply_patch``) <-> ``lambda1``;
- SigLIP's attention-pool head (``attn_pool.q`` + ``attn_pool.kv``) <-> ``head.attention.in_proj_*``.

transformers' DINOv2 has a ``mask_token`` used only for masked-image pretraining; it is removed
(the checkpoints have none). The last block, the final norms and SigLIP's pooling head are kept
(they are in the checkpoint) but not run.
"""

from __future__ import annotations

import torch
from torch import nn

from vega3d.policy.folder import TowerSpec


def build_tower(spec: TowerSpec) -> nn.Module:
    """A transformers ViT with ``spec``'s architecture (random init; sdpa attention)."""
    common = dict(hidden_size=spec.hidden_size, num_hidden_layers=spec.depth, num_attention_heads=spec.num_heads,
                  image_size=spec.image_size, patch_size=spec.patch_size, hidden_act=spec.act,
                  layer_norm_eps=spec.eps, attn_implementation="sdpa")  # fmt: skip
    if spec.kind == "dinov2_reg":
        from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

        assert spec.mlp_size % spec.hidden_size == 0, spec  # transformers' DINOv2 takes an integer mlp_ratio
        config = Dinov2WithRegistersConfig(**common, mlp_ratio=spec.mlp_size // spec.hidden_size,
                                           num_register_tokens=spec.registers, layerscale_value=1.0)  # fmt: skip
        tower = Dinov2WithRegistersModel(config)
        assert tower.encoder.layer[0].mlp.fc1.out_features == spec.mlp_size
        del tower.embeddings.mask_token
        tower.embeddings.register_parameter("mask_token", None)
        return tower
    from transformers import SiglipVisionConfig, SiglipVisionModel

    return SiglipVisionModel(SiglipVisionConfig(**common, intermediate_size=spec.mlp_size, vision_use_head=True))


def _layers(tower: nn.Module):
    return tower.encoder.layer if hasattr(tower.encoder, "layer") else tower.encoder.layers


def tower_features(tower: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) normalised pixels -> (B, N, D) patch tokens of the second-to-last block, no final norm."""
    hidden = tower.embeddings(pixels)
    for layer in _layers(tower)[:-1]:
        hidden = layer(hidden, None)
    prefix = 1 + tower.config.num_register_tokens if hasattr(tower.config, "num_register_tokens") else 0
    return hidden[:, prefix:]


class FusedVisionBackbone(nn.Module):
    """``featurizer`` (DINOv2) and ``fused_featurizer`` (SigLIP): per image, both towers' patch tokens
    concatenated along channels; images concatenated along tokens."""

    def __init__(self, towers: tuple):
        super().__init__()
        self.specs = towers
        self.featurizer = build_tower(towers[0])
        self.fused_featurizer = build_tower(towers[1])
        self.embed_dim = towers[0].hidden_size + towers[1].hidden_size
        self.num_patches = towers[0].grid ** 2

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values`` (B, 6·n, H, W): per image its DINOv2 then its SigLIP normalisation (prismatic's
        channel-stacked layout) -> (B, 256·n, 2176)."""
        images = pixel_values.split(6, dim=1)
        out = []
        for image in images:
            dino, siglip = image.split(3, dim=1)
            out.append(
                torch.cat([tower_features(self.featurizer, dino), tower_features(self.fused_featurizer, siglip)], -1)
            )
        return torch.cat(out, dim=1)


# --- key maps ----------------------------------------------------------------------------------------------

_DINO_BLOCK = {"norm1": "norm1", "attn.proj": "attention.o_proj", "ls1.scale_factor": "layer_scale1.lambda1",
               "norm2": "norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
               "ls2.scale_factor": "layer_scale2.lambda1"}  # fmt: skip
_SIGLIP_BLOCK = {"norm1": "layer_norm1", "attn.proj": "self_attn.out_proj", "norm2": "layer_norm2",
                 "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}  # fmt: skip
_DINO_TOP = {"cls_token": "embeddings.cls_token", "reg_token": "embeddings.register_tokens",
             "patch_embed.proj": "embeddings.patch_embeddings.projection", "norm": "layernorm"}  # fmt: skip
_SIGLIP_TOP = {"patch_embed.proj": "embeddings.patch_embedding", "norm": "post_layernorm",
               "attn_pool.latent": "head.probe", "attn_pool.proj": "head.attention.out_proj",
               "attn_pool.norm": "head.layernorm", "attn_pool.mlp.fc1": "head.mlp.fc1",
               "attn_pool.mlp.fc2": "head.mlp.fc2"}  # fmt: skip
_QKV = {"dinov2_reg": "attention.{}_proj", "siglip": "self_attn.{}_proj"}


def _renames(spec: TowerSpec) -> dict:
    """timm name -> transformers name for every tensor that maps one to one."""
    top, block, layer = ((_DINO_TOP, _DINO_BLOCK, "encoder.layer") if spec.kind == "dinov2_reg"
                         else (_SIGLIP_TOP, _SIGLIP_BLOCK, "encoder.layers"))  # fmt: skip
    out = {}
    for t, h in top.items():
        out |= (
            {t: h}
            if t in ("cls_token", "reg_token", "attn_pool.latent")
            else {f"{t}.{s}": f"{h}.{s}" for s in ("weight", "bias")}
        )
    for i in range(spec.depth):
        for t, h in block.items():
            suffixes = ("",) if t.startswith("ls") else (".weight", ".bias")
            out |= {f"blocks.{i}.{t}{s}": f"{layer}.{i}.{h}{s}" for s in suffixes}
    return out


def timm_to_hf(state: dict, spec: TowerSpec) -> dict:
    """A prismatic (timm-layout) tower state dict -> the transformers tower's. Keys it does not know stay under
    their timm name (so a strict load names them); a missing key is left missing."""
    state = dict(state)
    out = {h: state.pop(t) for t, h in _renames(spec).items() if t in state}
    layer = "encoder.layer" if spec.kind == "dinov2_reg" else "encoder.layers"
    for i in range(spec.depth):
        for s in ("weight", "bias"):
            qkv = state.pop(f"blocks.{i}.attn.qkv.{s}", None)
            if qkv is not None:
                for name, part in zip("qkv", qkv.chunk(3)):
                    out[f"{layer}.{i}.{_QKV[spec.kind].format(name)}.{s}"] = part
    pos = state.pop("pos_embed", None)
    if pos is not None and spec.kind == "dinov2_reg":  # timm adds no position to the class token
        out["embeddings.position_embeddings"] = torch.cat([pos.new_zeros(1, 1, pos.shape[-1]), pos], dim=1)
    elif pos is not None:
        out["embeddings.position_embedding.weight"] = pos[0]
    if spec.kind == "siglip":
        for s in ("weight", "bias"):
            q, kv = state.pop(f"attn_pool.q.{s}", None), state.pop(f"attn_pool.kv.{s}", None)
            if q is not None and kv is not None:
                out[f"head.attention.in_proj_{s}"] = torch.cat([q, kv])
    return out | state


def hf_to_timm(state: dict, spec: TowerSpec) -> dict:
    """The inverse of :func:`timm_to_hf` (the prismatic key layout, e.g. to write a checkpoint)."""
    state = dict(state)
    out = {t: state.pop(h) for t, h in _renames(spec).items() if h in state}
    layer = "encoder.layer" if spec.kind == "dinov2_reg" else "encoder.layers"
    for i in range(spec.depth):
        for s in ("weight", "bias"):
            parts = [state.pop(f"{layer}.{i}.{_QKV[spec.kind].format(n)}.{s}") for n in "qkv"]
            out[f"blocks.{i}.attn.qkv.{s}"] = torch.cat(parts)
    if spec.kind == "dinov2_reg":
        pos = state.pop("embeddings.position_embeddings")
        assert pos.is_meta or not pos[:, 0].any(), "the class token's position row must be zero (timm's no_embed_class)"
        out["pos_embed"] = pos[:, 1:]
    else:
        out["pos_embed"] = state.pop("embeddings.position_embedding.weight")[None]
        for s in ("weight", "bias"):
            w = state.pop(f"head.attention.in_proj_{s}")
            out[f"attn_pool.q.{s}"], out[f"attn_pool.kv.{s}"] = w[: spec.hidden_size], w[spec.hidden_size :]
    assert not state, f"unmapped tower tensors: {sorted(state)[:5]}"
    return out
