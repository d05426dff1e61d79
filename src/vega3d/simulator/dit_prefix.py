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
:func:`condition` computes them once for batch 1 and they are copied over the batch.

Batch invariance (a frame's features do not depend on how many frames share its call). Two
steps of the stock forward are computed in a way whose rounding does not depend on the batch
size, giving the same numbers up to float rounding:

* the patch embedding (a Conv3d whose kernel equals its stride, no padding) is the matrix
  product it is — patches (B·F·h·w, C·p_t·p_h·p_w) times the flattened kernel — in
  :func:`patch_embed`: torch's CPU convolution picks its algorithm by batch size (a native
  kernel for a batch of 1 with few input elements, oneDNN otherwise), and the two round
  differently;
* the conditioning is copied to a contiguous (B, ...) tensor instead of a stride-0 view: the
  CPU bf16 matrix product of the context's key/value projections rounds a stride-0 batch
  differently from a contiguous one.

On the CPU the rest of a block (matrix products, attention, norms) computes each frame's rows
the same way whatever the batch: tests/simulator/test_determinism.py checks bit identity over
batch sizes. On a GPU the matrix-product kernels depend on the shapes; see docs/simulator.md.
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
    transformer,
    latents: torch.Tensor,
    timestep_proj: torch.Tensor,
    context: torch.Tensor,
    block: int,
    blocks=None,
    control=None,
) -> torch.Tensor:
    """Hidden states after ``blocks[block]`` for ``latents`` (B, 16, F, H/8, W/8).

    ``timestep_proj`` / ``context`` from :func:`condition` (batch 1 or B). ``blocks``: the
    callables to use for blocks ``0..block`` (default ``transformer.blocks``; the simulator
    passes compiled ones). ``control``: for a Wan2.1-VACE transformer, ``(control latents
    (B, 96, F, H/8, W/8), scale)``: each VACE layer's hint is added after its block, as the stock
    forward does (:mod:`vega3d.simulator.vace`). Returns (B, F, h, w, D) with ``h, w = H/16,
    W/16`` — the token grid in the order the patch embedding flattens it.
    """
    b, _, f, hh, ww = latents.shape
    p_t, p_h, p_w = transformer.config.patch_size
    grid = (f // p_t, hh // p_h, ww // p_w)
    rotary = transformer.rope(latents)
    x = patch_embed(transformer.patch_embedding, latents)
    if context.shape[0] != b:
        context = context.expand(b, -1, -1).contiguous()
    if timestep_proj.shape[0] != b:
        timestep_proj = timestep_proj.expand(b, -1, -1).contiguous()
    stack = transformer.blocks if blocks is None else blocks
    hints = {}
    if control is not None:
        from vega3d.simulator.vace import vace_hints

        hints = vace_hints(transformer, x, context, control[0], timestep_proj, rotary, block, control[1])
    for i in range(block + 1):
        x = stack[i](x, context, timestep_proj, rotary)
        if i in hints:  # in place: a caller's tap on blocks[i] (multi-block reads) holds this tensor
            x.add_(hints[i])
    return x.unflatten(1, grid)


def patch_embed(conv: torch.nn.Conv3d, latents: torch.Tensor) -> torch.Tensor:
    """``conv(latents).flatten(2).transpose(1, 2)`` for a Conv3d with kernel == stride and no
    padding, as one matrix product: (B, C, F, H, W) → tokens (B, F'·H'·W', D) in the conv's
    (frame, row, column) order (see the module docstring for why)."""
    assert tuple(conv.kernel_size) == tuple(conv.stride) and not any(conv.padding) and conv.groups == 1
    pt, ph, pw = conv.kernel_size
    b, c, f, h, w = latents.shape
    patches = latents.reshape(b, c, f // pt, pt, h // ph, ph, w // pw, pw).permute(0, 2, 4, 6, 1, 3, 5, 7)
    tokens = torch.nn.functional.linear(patches.flatten(4), conv.weight.flatten(1), conv.bias)
    return tokens.flatten(1, 3)
