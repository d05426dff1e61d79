"""``dinov3``: DINOv3 ViT (transformers ``DINOv3ViTModel``) with its token layout handled by name.

What ``hf`` does for any ViT (whole-frame resize to ``image_size``, normalisation from the
folder's ``preprocessor_config.json``, ``layer``), with DINOv3's sequence read explicitly:
``[CLS, register_1 .. register_R, patch_1 .. patch_hw]`` (R = ``num_register_tokens``, 4 for the
released ViTs). The CLS and register tokens are split off by that count (a sequence of another
length is an error, never a guess), the patches reshaped to the (image_size/16)² grid, and
``cls_token`` says what happens to the CLS token: ``"drop"`` (default) or ``"concat"`` (appended
to every cell: 2 x hidden channels). Registers are always dropped: they carry no location.
DINOv3 uses RoPE, so any ``image_size`` that is a multiple of the patch size (16) works, e.g.
``image_size=448`` for a 28x28 grid (default: the config's 224 → 14x14).
"""

from __future__ import annotations

import torch

from vega3d.encoders.common import model_config, resize_whole
from vega3d.encoders.hf import HFEncoder
from vega3d.errors import Vega3DError
from vega3d.standin import is_stand_in

CLS_TOKEN = ("drop", "concat")


class DINOv3Encoder(HFEncoder):
    """DINOv3 patch grids, CLS and registers handled by name (module docstring)."""

    name = "dinov3"

    def __init__(self, model, layer=None, image_size=None, cls_token: str = "drop", mean=None, std=None,
                 batch_size: int = 8, dtype: str = "float32", device: str = "cpu"):  # fmt: skip
        _, cfg = model_config(model, "dinov3 encoder", "a DINOv3 ViT in the transformers layout")
        if cfg.get("model_type") != "dinov3_vit":
            raise Vega3DError(
                f"dinov3 encoder: {model} has model_type {cfg.get('model_type')!r}; expected 'dinov3_vit' "
                "(a DINOv3 ViT in the transformers layout; other backbones: the 'hf' encoder)"
            )
        if cls_token not in CLS_TOKEN:
            raise Vega3DError(f"dinov3 encoder: cls_token={cls_token!r}; expected one of {list(CLS_TOKEN)}")
        super().__init__(model, layer=layer, image_size=image_size, mean=mean, std=std, batch_size=batch_size,
                         dtype=dtype, device=device)  # fmt: skip
        self.num_registers, self.cls_token = int(cfg.get("num_register_tokens", 0)), cls_token
        self.config.update(name=self.name, num_register_tokens=self.num_registers, cls_token=cls_token,
                           tokens="[CLS, registers, patches]: registers dropped", stand_in=is_stand_in(model))  # fmt: skip

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.grid
        prefix = 1 + self.num_registers
        out = []
        for s in range(0, x.shape[0], self.batch_size):
            tokens = self._tokens((resize_whole(x[s : s + self.batch_size], self.image_size) - self.mean) / self.std)
            assert tokens.shape[1] == prefix + h * w, f"{tokens.shape[1]} tokens: not CLS + registers + {h}x{w} patches"
            grid = tokens[:, prefix:].reshape(-1, h, w, tokens.shape[-1])
            if self.cls_token == "concat":
                grid = torch.cat([grid, tokens[:, :1, None].expand(-1, h, w, -1)], dim=-1)
            out.append(grid.float().cpu())
        return torch.cat(out).contiguous()
