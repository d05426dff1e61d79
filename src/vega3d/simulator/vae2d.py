"""Single-frame Wan2.1 VAE encoding as 2-D convolutions.

Wan's VAE is causal in time: every ``WanCausalConv3d`` with a ``kt``-tap temporal kernel
pads ``kt - 1`` frames of zeros *before* the clip (``_padding = (.., 2*p_t, 0)``, with
``kt = 2*p_t + 1``). diffusers' ``AutoencoderKLWan._encode`` encodes the first frame as its
own chunk (``x[:, :, :1]``) with an empty feature cache, so for a one-frame video each conv
sees ``[0, .., 0, frame]`` and only the **last temporal tap** ``weight[:, :, -1]`` touches
data: the 3-D conv equals a 2-D conv with that kernel slice (``kt``x fewer multiply-adds:
3x for the 3x3x3 convs). The other pieces with temporal extent are skipped by the stock
encoder itself on the first chunk: ``WanResample("downsample3d")`` only caches its input
and does *not* run its ``time_conv`` when the cache slot is empty. Norms, the mid-block
attention and the spatial resamplers already work frame by frame. The posterior mode is
the first ``z_dim`` channels of ``quant_conv``'s output, so only that half is computed.

:class:`FrameEncoder` reuses the VAE's own norm, attention and resample modules (called on
``(N, C, 1, H, W)`` views) and copies each causal conv's last temporal slice once into a
``Conv2d``. It matches ``vae.encode(x[:, :, None]).latent_dist.mode()`` to float tolerance
(tests/simulator/test_fast_paths.py). Only the Wan2.1 topology is supported (no residual
down blocks / patchified input, which are Wan2.2); :func:`supports_2d` says whether a VAE
qualifies, and the simulator falls back to the stock encoder otherwise.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from diffusers.models.autoencoders.autoencoder_kl_wan import (
    WanAttentionBlock,
    WanCausalConv3d,
    WanResample,
    WanResidualBlock,
)

from vega3d.simulator.checks import check


def supports_2d(vae) -> bool:
    """Whether ``vae`` (AutoencoderKLWan) has the Wan2.1 encoder topology this module handles."""
    cfg = vae.config
    return not getattr(cfg, "is_residual", False) and getattr(cfg, "patch_size", None) is None


def _last_tap_conv(conv: WanCausalConv3d, out_channels: int | None = None) -> nn.Conv2d:
    """The 2-D conv a causal 3-D conv reduces to on a one-frame input."""
    kt = conv.kernel_size[0]
    pt = conv._padding[4]  # causal zero frames in front: 2 * p_t
    assert kt == pt + 1 and conv.stride[0] == 1, "Wan2.1's causal convs: temporal kernel = front padding + 1, stride 1"
    w = conv.weight.detach()[:, :, -1]
    b = conv.bias.detach() if conv.bias is not None else None
    if out_channels is not None:
        w, b = w[:out_channels], (b[:out_channels] if b is not None else None)
    pad_w, pad_h = conv._padding[0], conv._padding[2]
    assert conv._padding[1] == pad_w and conv._padding[3] == pad_h, "Wan2.1's causal convs pad symmetrically in space"
    conv2d = nn.Conv2d(
        w.shape[1],
        w.shape[0],
        tuple(w.shape[2:]),
        stride=conv.stride[1:],
        padding=(pad_h, pad_w),
        bias=b is not None,
        device=w.device,
        dtype=w.dtype,
    )
    with torch.no_grad():
        conv2d.weight.copy_(w)
        if b is not None:
            conv2d.bias.copy_(b)
    conv2d.requires_grad_(False)
    return conv2d


def _frames(module, x: torch.Tensor) -> torch.Tensor:
    """Run a per-frame VAE module (norm, attention, spatial resample) on (N, C, H, W)."""
    return module(x.unsqueeze(2)).squeeze(2)


class FrameEncoder(nn.Module):
    """Encode single frames with a Wan2.1 VAE: (N, 3, H, W) in [-1, 1] → mode (N, z_dim, H/8, W/8)."""

    def __init__(self, vae):
        super().__init__()
        check(supports_2d(vae), "vae2d", "this VAE has residual down blocks or patchified input (Wan2.2)",
              "the Wan2.1 VAE (the only one the 2-D single-frame path supports)")  # fmt: skip
        self.encoder = vae.encoder  # shared, for its norms / attention / resample modules
        self.z_dim = int(vae.config.z_dim)
        self._convs: dict[int, nn.Conv2d] = {}
        convs = []
        for module in self.encoder.modules():
            if isinstance(module, WanCausalConv3d) and not _is_time_conv(self.encoder, module):
                conv = _last_tap_conv(module)
                self._convs[id(module)] = conv
                convs.append(conv)
        self.quant = _last_tap_conv(vae.quant_conv, out_channels=self.z_dim)  # mean half only
        self.convs = nn.ModuleList(convs)

    def _conv(self, conv3d: WanCausalConv3d, x: torch.Tensor) -> torch.Tensor:
        return self._convs[id(conv3d)](x)

    def _residual(self, block: WanResidualBlock, x: torch.Tensor) -> torch.Tensor:
        shortcut = block.conv_shortcut
        h = x if isinstance(shortcut, nn.Identity) else self._conv(shortcut, x)
        x = block.nonlinearity(_frames(block.norm1, x))
        x = self._conv(block.conv1, x)
        x = block.dropout(block.nonlinearity(_frames(block.norm2, x)))
        x = self._conv(block.conv2, x)
        return x + h

    def _layer(self, layer, x: torch.Tensor) -> torch.Tensor:
        if isinstance(layer, WanResidualBlock):
            return self._residual(layer, x)
        assert isinstance(layer, (WanAttentionBlock, WanResample)), f"not a Wan2.1 encoder layer: {layer}"
        return _frames(layer, x)  # WanResample without a feature cache is what the first chunk runs: spatial only

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        x = self._conv(enc.conv_in, x)
        for layer in enc.down_blocks:
            x = self._layer(layer, x)
        mid = enc.mid_block
        x = self._residual(mid.resnets[0], x)
        for attn, resnet in zip(mid.attentions, mid.resnets[1:]):
            if attn is not None:
                x = _frames(attn, x)
            x = self._residual(resnet, x)
        x = enc.nonlinearity(_frames(enc.norm_out, x))
        x = self._conv(enc.conv_out, x)
        return self.quant(x)


def _is_time_conv(encoder, module) -> bool:
    return any(isinstance(m, WanResample) and getattr(m, "time_conv", None) is module for m in encoder.modules())
