"""Run Wan's DiT only up to the block whose output we want.

``WanTransformer3DModel.forward`` does: rotary embedding, patch embedding (a (1, 2, 2)
Conv3d → tokens in (frame, row, column) order), condition embedding (timestep → 6
modulation vectors per block; text context → model width), every block, then the output
norm/projection and unpatchify. The features are the hidden states after
``blocks[block]``, so :func:`dit_prefix` runs the same diffusers modules in the same
order but stops there: blocks ``block+1 ..`` and ``norm_out``/``proj_out`` are never run.
The result equals a forward hook on ``blocks[block]`` during the full forward to float
tolerance (tests/simulator/test_simulator.py).

Both conditioning inputs are constants of a simulator (fixed timestep, empty prompt), so
:func:`condition` computes them once for batch 1 and they are broadcast over the batch.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def condition(transformer, timestep: int, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The block inputs that depend only on the timestep and the text context.

    ``context``: (text_len, text_dim) raw umT5 rows. Returns ``(timestep_proj (1, 6, D),
    context (1, text_len, D))`` in the transformer's compute dtype, as the full forward
    computes them.
    """
    dtype = transformer.patch_embedding.weight.dtype
    device = transformer.patch_embedding.weight.device
    t = torch.tensor([int(timestep)], dtype=torch.long, device=device)
    _, timestep_proj, ctx, _ = transformer.condition_embedder(t, context[None].to(device=device, dtype=dtype), None)
    return timestep_proj.unflatten(1, (6, -1)), ctx


@torch.no_grad()
def dit_prefix(
    transformer, latents: torch.Tensor, timestep_proj: torch.Tensor, context: torch.Tensor, block: int, blocks=None
) -> torch.Tensor:
    """Hidden states after ``blocks[block]`` for ``latents`` (B, 16, F, H/8, W/8).

    ``timestep_proj`` / ``context`` from :func:`condition` (batch 1 or B). ``blocks``: the
    callables to use for blocks ``0..block`` (default ``transformer.blocks``; the simulator
    passes compiled ones). Returns (B, F, h, w, D) with ``h, w = H/16, W/16`` — the token
    grid in the order the patch embedding flattens it.
    """
    b, _, f, hh, ww = latents.shape
    p_t, p_h, p_w = transformer.config.patch_size
    grid = (f // p_t, hh // p_h, ww // p_w)
    rotary = transformer.rope(latents)
    x = transformer.patch_embedding(latents).flatten(2).transpose(1, 2).contiguous()
    if context.shape[0] != b:
        context = context.expand(b, -1, -1)
    if timestep_proj.shape[0] != b:
        timestep_proj = timestep_proj.expand(b, -1, -1)
    stack = transformer.blocks if blocks is None else blocks
    for i in range(block + 1):
        x = stack[i](x, context, timestep_proj, rotary)
    return x.unflatten(1, grid)
