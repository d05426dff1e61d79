"""The objective against a hand computation on the stock diffusers modules, Wan's initialisation, the
noise-level draw against diffusers' and the simulator's maps, the clips."""

import math

import numpy as np
import pytest
import torch

from vega3d.world.config import TRAIN_SEED_BASE, WorldData, WorldModelConfig


def tiny_model_config(**kw):
    return WorldModelConfig(num_layers=2, dim=32, num_heads=2, ffn_dim=64, text_dim=16, freq_dim=32, **kw)


def test_loss_is_wans_flow_objective_on_the_stock_modules():
    from vega3d.world.model import WorldModel, build_transformer, build_vae, context_rows

    m = tiny_model_config()
    vae = build_vae(4, 1, seed=1)
    model = WorldModel(build_transformer(m, 0), vae, context_rows(16, 0), {"vae": {"source": "random"}})
    with torch.no_grad():  # a non-zero output projection, so the prediction is not trivially 0
        model.transformer.proj_out.weight.normal_(generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (2, 3, 32, 48, 3), dtype=torch.uint8, generator=g)
    noise = torch.randn(2, 16, 3, 4, 6, generator=g)
    t, sigma = torch.tensor([299, 700]), torch.tensor([0.29992384, 0.70048279])
    loss = model(frames=frames, noise=noise, t=t, sigma=sigma).loss

    # by hand: the stock 3-D VAE on one-frame videos, Wan's normalisation, x_t, the stock forward
    x = frames.flatten(0, 1).permute(0, 3, 1, 2).float()[:, :, None] / 255 * 2 - 1
    with torch.no_grad():
        mode = vae.encode(x).latent_dist.mode()[:, :, 0]
        mean, std = torch.tensor(vae.config.latents_mean), torch.tensor(vae.config.latents_std)
        z = ((mode - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).unflatten(0, (2, 3)).transpose(1, 2)
        s = sigma.view(-1, 1, 1, 1, 1)
        x_t = (1 - s) * z + s * noise
        context = torch.zeros(2, 512, 16)
        context[:, :1] = model.context_rows
        v = model.transformer(x_t, t, context, return_dict=False)[0]
        expected = ((v - (noise - z)) ** 2).mean()
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-4)


def test_wan_initialisation_is_seeded_and_leaves_the_global_rng_alone():
    from vega3d.world.model import build_transformer

    m = tiny_model_config()
    state = torch.random.get_rng_state()
    a = build_transformer(m, 7).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(123)  # another global state: same weights
    b = build_transformer(m, 7).state_dict()
    c = build_transformer(m, 8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["blocks.0.attn1.to_q.weight"], c["blocks.0.attn1.to_q.weight"])
    # Wan2.1's init_weights: zero head, N(0, 0.02) embedders, xavier-uniform linears with zero bias
    assert not a["proj_out.weight"].any() and not a["proj_out.bias"].any()
    assert float(a["condition_embedder.text_embedder.linear_1.weight"].std()) == pytest.approx(0.02, rel=0.2)
    q = a["blocks.1.ffn.net.0.proj.weight"]
    assert (
        float(q.abs().max()) <= math.sqrt(6 / (q.shape[0] + q.shape[1])) and not a["blocks.1.ffn.net.0.proj.bias"].any()
    )
    assert torch.equal(a["blocks.0.norm2.weight"], torch.ones(32))


def test_noise_levels_are_diffusers_logit_normal_draws_on_the_simulators_grid():
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.training_utils import compute_density_for_timestep_sampling

    from vega3d.simulator import flow_noise_level
    from vega3d.simulator.noise import flow_sigma_grid
    from vega3d.world.noise import draw_noise_level

    timesteps, sigmas = flow_sigma_grid(5.0)
    stock = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=5.0)
    for seed in range(200):
        t, sigma = draw_noise_level(torch.Generator().manual_seed(seed), 5.0, 0.0, 1.0)
        u = compute_density_for_timestep_sampling(
            "logit_normal", 1, 0.0, 1.0, generator=torch.Generator().manual_seed(seed)
        )
        index = int(u[0] * 1000)  # diffusers' training scripts: timesteps[(u * num_train_timesteps).long()]
        assert (t, np.float32(sigma)) == (timesteps[index], sigmas[index])
        # the probe at this timestep conditions the DiT on the same t; near sigma = 1 several grid points
        # share one integer t (the shift crowds them), and the probe reads the first: sigma within 1e-3
        t_probe, sigma_probe = flow_noise_level(t, 5.0)
        assert t_probe == t and abs(sigma_probe - sigma) < 1e-3
        assert abs(t - float(stock.timesteps[index])) <= 2  # diffusers' own grid, linspace(1, 1/n) instead of Wan's


def test_clips_are_a_function_of_epoch_and_index_and_never_a_probe_room():
    from vega3d.scenes import synthetic_scene
    from vega3d.world.data import ClipDataset, collate, noise_level_drawer

    data = WorldData(height=32, width=48, clip_frames=2, num_clips=4)
    ds = ClipDataset(data, noise_level_drawer(tiny_model_config()))
    a, b = ds[1], ds[1]
    assert all(torch.equal(a[k], b[k]) for k in ("frames", "noise", "t", "sigma"))
    assert a["frames"].shape == (2, 32, 48, 3) and a["noise"].shape == (16, 2, 4, 6)
    assert ds.clip_seed(1) == TRAIN_SEED_BASE + 1
    room = synthetic_scene(2, 32, 48, TRAIN_SEED_BASE + 1, arc_degrees=40.0)
    assert torch.equal(a["frames"], room.color)
    ds.set_epoch(1)
    assert ds.clip_seed(1) == TRAIN_SEED_BASE + 5 and not torch.equal(ds[1]["frames"], a["frames"])
    batch = collate([ds[0], ds[1]])
    assert batch["frames"].shape == (2, 2, 32, 48, 3) and batch["num_skipped"] == 0 and len(batch["ids"]) == 2


def test_media_clips_read_consecutive_frames_fitted_whole(tmp_path):
    from vega3d.media import write_frame_folder
    from vega3d.world.data import ClipDataset

    frames = np.stack([np.full((40, 60, 3), 10 * k, dtype=np.uint8) for k in range(6)])
    write_frame_folder(tmp_path / "shots", frames)
    data = WorldData(source="media", media_root=str(tmp_path / "shots"), height=32, width=48, clip_frames=3,
                     frame_stride=2, num_clips=3)  # fmt: skip
    item = ClipDataset(data)[0]
    values = item["frames"][:, 0, 0, 0].tolist()
    assert item["frames"].shape == (3, 32, 48, 3)
    assert values in ([0, 20, 40], [10, 30, 50])  # frames k, k+2, k+4 of the folder


def test_too_short_media_is_a_one_line_error(tmp_path):
    from vega3d.errors import Vega3DError
    from vega3d.media import write_frame_folder
    from vega3d.world.data import ClipDataset

    write_frame_folder(tmp_path / "shots", np.zeros((2, 16, 16, 3), dtype=np.uint8))
    data = WorldData(source="media", media_root=str(tmp_path / "shots"), height=16, width=16, clip_frames=3)
    with pytest.raises(Vega3DError, match="fewer frames than a clip spans.*spans 3 frames"):
        ClipDataset(data)
