"""Wan2.1-VACE through the simulator: the control branch beside the Wan2.1 DiT.

diffusers' ``WanVACETransformer3DModel`` is Wan2.1's DiT (the same ``blocks``, patch and
condition embeddings) plus ``vace_blocks``: block k reads the control tokens and the DiT's
patch-embedded input and emits a *hint* that the forward adds to the DiT's hidden states right
after base block ``vace_layers[k]`` (Wan2.1-VACE-1.3B: every other block, 0, 2, .., 28). So
:func:`vega3d.simulator.dit_prefix.dit_prefix` runs a VACE model on the same code path as
Wan2.1-T2V with one addition, :func:`vace_hints`: the features after block ``b`` are the hidden
states the forward carries into block ``b + 1`` — the block's output plus its hint when ``b`` is
a VACE layer (equal to a forward pre-hook on ``blocks[b + 1]``, tests/encoders/test_towers.py).

The control input is what diffusers' ``WanVACEPipeline`` builds from a control video and a mask
(``prepare_video_latents`` + ``prepare_masks``): 96 channels = the normalised VAE latents of the
*inactive* part ``video·(1 − mask)`` (16), of the *reactive* part ``video·mask`` (16), and the mask
folded 8x8 onto the latent grid (64). The simulator feeds one of (``vace_control``):

* ``"frames"`` (default): the frames themselves as the control video, with the pipeline's default
  all-ones mask ("generate everything, following this video"): reactive = the frames' own
  latents z (no extra VAE pass), inactive = the latent of a mid-grey frame (0 in [−1, 1]);
* ``"none"``: the pipeline's text-to-video input (no control video: zeros, mask all ones), so
  both latents are the mid-grey frame's.

``vace_scale`` multiplies every hint (the pipeline's ``conditioning_scale``, default 1.0); with 0 the
model is its base DiT, i.e. Wan2.1-T2V's code path and numbers for the same base weights.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from vega3d.simulator.checks import check

#: What the control branch is given (module docstring).
Control = Literal["frames", "none"]
CONTROLS = get_args(Control)
#: The mask's channels: one per pixel of the VAE's 8x8 spatial stride.
MASK_CHANNELS = 64


def is_vace(transformer_or_config) -> bool:
    """Whether a transformer (or its config dict) is a WanVACETransformer3DModel."""
    if isinstance(transformer_or_config, dict):
        return "vace_layers" in transformer_or_config
    return hasattr(transformer_or_config, "vace_blocks")


def check_vace_options(vace: bool, control: str, scale: float) -> None:
    """``vace_control`` / ``vace_scale`` (valid values, declared on the simulator's options) are only
    changed from their defaults for a VACE model."""
    plain = control == "frames" and float(scale) == 1.0
    check(vace or plain, "vace_control/vace_scale", f"set ({control!r}, {scale!r}) for a model without a VACE branch",
          "the defaults for Wan2.1-T2V (they apply to a Wan2.1-VACE transformer only)")  # fmt: skip


def control_latents(z: torch.Tensor, grey: torch.Tensor, control: str) -> torch.Tensor:
    """The (B, 96, F, h8, w8) control input for normalised latents ``z`` (B, 16, F, h8, w8):
    [inactive | reactive | mask], with ``grey`` (1, 16, F, h8, w8) the mid-grey frame's latent."""
    inactive = grey.expand_as(z)
    reactive = z if control == "frames" else inactive
    mask = z.new_ones(z.shape[0], MASK_CHANNELS, *z.shape[2:])
    return torch.cat([inactive, reactive, mask], dim=1)


@torch.no_grad()
def vace_hints(transformer, x, context, control, timestep_proj, rotary, block: int, scale: float) -> dict:
    """``{base block: hint · scale}`` for the VACE layers up to ``block``, as the stock forward
    computes them: ``x`` the patch-embedded DiT input (B, L, D), ``control`` (B, 96, F, h8, w8)."""
    from vega3d.simulator.dit_prefix import patch_embed

    layers = sorted(int(v) for v in transformer.config.vace_layers)  # the forward pops hints in layer order
    c = patch_embed(transformer.vace_patch_embedding, control.to(x.dtype))
    assert c.shape[1] == x.shape[1], "control tokens must match the DiT's (same frames and size)"
    hints = {}
    for k, layer in enumerate(layers):
        if layer > block:
            break
        hint, c = transformer.vace_blocks[k](x, context, c, timestep_proj, rotary)
        hints[layer] = hint * scale
    return hints
