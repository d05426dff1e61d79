"""``random_vit``: a randomly initialised ViT — the floor for a *learned* architecture.

Same architecture family as the real backbones (transformers' ``ViTModel``) with no
training: whatever it scores comes from the architecture (patchification, position
embeddings, mixing) and not from learned 3D knowledge. It is NOT the probe's chance
floor: random patch embeddings are random linear projections of the pixels, so they keep
local appearance and score well above chance (on a synthetic room it can beat raw
pixels). The chance floor of the AUROC scores is 0.5 by construction.
"""

from __future__ import annotations

import torch

from vega3d.encoders.common import Encoder, resize_whole
from vega3d.errors import Vega3DError


def init_weights_(model: torch.nn.Module, generator: torch.Generator, std: float = 0.02) -> torch.nn.Module:
    """Deterministic ViT-style init from ``generator``: N(0, std) weights and embeddings,
    zero biases, unit LayerNorm scales. Touches no global random state."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower():
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * std)
    return model


class RandomViTEncoder(Encoder):
    """Patch tokens of a random ``ViTModel``: (N, image_size/patch, image_size/patch, hidden_size).

    The whole frame is resized to ``image_size`` (square; no crop), normalised with mean
    and std 0.5, and the CLS token is dropped. Weights come from ``seed`` alone.
    """

    name = "random_vit"

    def __init__(
        self,
        seed: int = 0,
        image_size: int = 224,
        patch_size: int = 16,
        hidden_size: int = 192,
        num_layers: int = 4,
        num_heads: int = 3,
        batch_size: int = 16,
    ):
        from transformers import ViTConfig, ViTModel

        if image_size % patch_size or hidden_size % num_heads:
            raise Vega3DError(
                f"random_vit encoder: image_size {image_size} must be a multiple of patch_size "
                f"{patch_size} and hidden_size {hidden_size} of num_heads {num_heads}"
            )
        cfg = ViTConfig(
            image_size=image_size,
            patch_size=patch_size,
            hidden_size=hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            intermediate_size=4 * hidden_size,
        )
        with torch.random.fork_rng(devices=[]):  # construction draws from the global RNG: keep it untouched
            model = ViTModel(cfg, add_pooling_layer=False)
        self.model = init_weights_(model, torch.Generator().manual_seed(int(seed))).eval()
        self.grid = (image_size // patch_size, image_size // patch_size)
        self.image_size, self.batch_size = image_size, int(batch_size)
        self.config = {
            "name": self.name,
            "seed": int(seed),
            "image_size": image_size,
            "patch_size": patch_size,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "num_heads": num_heads,
            "weights": "random by design: the floor for a learned architecture, not the probe's chance "
            "floor (random patch embeddings keep local appearance; chance AUROC is 0.5)",
        }

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.grid
        out = []
        for s in range(0, x.shape[0], self.batch_size):
            px = (resize_whole(x[s : s + self.batch_size], (self.image_size, self.image_size)) - 0.5) / 0.5
            tokens = self.model(pixel_values=px).last_hidden_state[:, 1:]
            out.append(tokens.reshape(-1, h, w, tokens.shape[-1]))
        return torch.cat(out).float().contiguous()
