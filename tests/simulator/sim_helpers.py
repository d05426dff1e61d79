"""Tiny in-memory Wan models and the straightforward (reference) feature computation.

The reference is what a user would write with diffusers alone: the stock VAE encoder on
a one-frame video, and the FULL ``WanTransformer3DModel.forward`` with a forward hook on
``blocks[block]``. The simulator's fast paths are tested against it.
"""

import torch

TEXT_DIM = 32


def tiny_transformer(num_layers=4, seed=0):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)  # test-only: diffusers' constructors draw from the global generator
    model = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=16,
        out_channels=16,
        text_dim=TEXT_DIM,
        freq_dim=32,
        ffn_dim=64,
        num_layers=num_layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
    )
    return model.eval().requires_grad_(False)


def tiny_vae(seed=0):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    vae = (
        AutoencoderKLWan(
            base_dim=8,
            z_dim=16,
            dim_mult=[1, 2, 4, 4],
            num_res_blocks=2,
            attn_scales=[],
            temperal_downsample=[False, True, True],
        )
        .eval()
        .requires_grad_(False)
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # make norms / biases non-trivial so every weight matters
        for name, p in vae.named_parameters():
            if name.endswith("gamma") or name.endswith("bias"):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return vae


def latent_stats():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(16, generator=gen) * 0.3, torch.rand(16, generator=gen) + 0.5


def context(rows=7, seed=2):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(rows, TEXT_DIM, generator=gen)


def make_sim(num_layers=4, block=2, height=64, width=96, **kw):
    from vega3d.simulator import WanWorldSimulator

    mean, std = latent_stats()
    return WanWorldSimulator(
        tiny_transformer(num_layers), tiny_vae(), mean, std, context(), block=block, height=height, width=width, **kw
    )


def frames(n=3, h=64, w=96, seed=3):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def hooked_full_forward(transformer, latents, t, ctx_padded, block):
    """Hidden states of blocks[block] captured by a hook during the full diffusers forward."""
    captured = {}
    handle = transformer.blocks[block].register_forward_hook(lambda m, i, o: captured.__setitem__("h", o))
    try:
        b = latents.shape[0]
        transformer(
            hidden_states=latents,
            timestep=torch.full((b,), t, dtype=torch.long),
            encoder_hidden_states=ctx_padded[None].expand(b, -1, -1),
            return_dict=False,
        )
    finally:
        handle.remove()
    return captured["h"]


@torch.no_grad()
def reference_features(sim, x01, eps):
    """Straightforward per-frame features for frames already at the simulator size."""
    import torch.nn.functional as F

    outs = []
    ctx = F.pad(context(), (0, 0, 0, 512 - context().shape[0]))
    mean, std = latent_stats()
    for i in range(x01.shape[0]):
        video = (x01[i : i + 1] * 2 - 1)[:, :, None]
        mode = sim.vae.encode(video).latent_dist.mode()
        z = (mode - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1)
        x_t = (1 - sim.sigma) * z + sim.sigma * eps[i : i + 1]
        h = hooked_full_forward(sim.transformer, x_t, sim.t, ctx, sim.block)
        outs.append(h.unflatten(1, (x_t.shape[2], x_t.shape[3] // 2, x_t.shape[4] // 2))[:, 0])
    return torch.cat(outs)
