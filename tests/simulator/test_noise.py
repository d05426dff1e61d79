"""The noise level must be exactly Wan's FlowUniPC grid (1000 steps, shift), nearest timestep."""

import numpy as np
import pytest
import torch

from vega3d.errors import Vega3DError
from vega3d.simulator.noise import flow_noise_level, flow_sigma_grid


def test_paper_numbers():
    t, sigma = flow_noise_level(300, shift=5.0)
    assert t == 299
    assert sigma == float(np.float32(0.29992384))
    assert flow_noise_level(500)[0] == 500
    assert flow_noise_level(700)[0] == 700
    assert flow_noise_level(100)[0] == 101
    assert flow_noise_level(200)[0] == 201


def _wan_flow_unipc_grid(shift, n=1000):
    """Independent transcription of Wan's FlowUniPCMultistepScheduler(shift=1).set_timesteps(n, shift)."""
    alphas = np.linspace(1, 1 / n, n)[::-1].copy()
    base = torch.from_numpy(1.0 - alphas).to(dtype=torch.float32)
    sigma_max, sigma_min = base[0].item(), base[-1].item()
    sig = np.linspace(sigma_max, sigma_min, n + 1).copy()[:-1]
    sig = shift * sig / (1 + (shift - 1) * sig)
    return torch.from_numpy(sig * n).to(dtype=torch.int64), torch.from_numpy(sig.astype(np.float32))


@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0])
def test_grid_matches_wan_and_diffusers_unipc(shift):
    from diffusers import UniPCMultistepScheduler

    timesteps, sigmas = flow_sigma_grid(shift)
    wan_t, wan_s = _wan_flow_unipc_grid(shift)
    assert torch.equal(torch.from_numpy(timesteps), wan_t)
    assert torch.equal(torch.from_numpy(sigmas), wan_s)

    sched = UniPCMultistepScheduler(use_flow_sigmas=True, flow_shift=shift, prediction_type="flow_prediction")
    sched.set_timesteps(sigmas=np.linspace(float(np.float32(0.999)), 0.0, 1001)[:-1])
    assert torch.equal(sched.timesteps, torch.from_numpy(timesteps))
    assert torch.equal(sched.sigmas[:-1], torch.from_numpy(sigmas))


def test_nearest_grid_point_is_used():
    timesteps, sigmas = flow_sigma_grid(5.0)
    for request in [0, 1, 37.5, 299.6, 301, 999, 1000]:
        t, sigma = flow_noise_level(request)
        dist = np.abs(timesteps - request)
        assert abs(t - request) == dist.min()
        k = int(np.argmin(dist))
        assert sigma == float(sigmas[k])


def test_shift_changes_sigma():
    assert flow_noise_level(300, shift=1.0)[1] != flow_noise_level(300, shift=5.0)[1]


@pytest.mark.parametrize("bad", [-1, 1000.5, float("nan"), float("inf"), "300", None, True])
def test_bad_timestep(bad):
    with pytest.raises(Vega3DError, match="timestep"):
        flow_noise_level(bad)


@pytest.mark.parametrize("bad", [0, -5.0, float("nan"), "5"])
def test_bad_shift(bad):
    with pytest.raises(Vega3DError, match="shift"):
        flow_noise_level(300, shift=bad)


def test_bad_num_train_timesteps():
    with pytest.raises(Vega3DError, match="num_train_timesteps"):
        flow_noise_level(300, num_train_timesteps=0)
