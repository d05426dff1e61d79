"""The noise level of one training clip: diffusers' logit-normal draw, on Wan's own flow grid.

Wan trains its DiT with rectified flow: ``x_t = (1 - sigma) x0 + sigma eps``, the DiT predicts
the velocity ``eps - x0`` at the integer timestep ``t``. diffusers' flow-matching training
scripts (SD3, Flux, Wan LoRA) draw ``u = sigmoid(N(logit_mean, logit_std))``
(``diffusers.training_utils.compute_density_for_timestep_sampling("logit_normal")``), take
``index = int(u * num_train_timesteps)`` and read the shifted schedule at that index
(``timesteps[index]``, ``sigmas[index]``; index 0 is the noisiest). Here the schedule is Wan's
own grid, :func:`vega3d.simulator.noise.flow_sigma_grid` — the one
:func:`~vega3d.simulator.noise.flow_noise_level` reads at probe time — so every training pair
``(t, sigma)`` is a point the simulator can read, with ``t = int(1000 sigma)`` as there: a probe
at ``timestep=300`` conditions the DiT on exactly a ``(t, sigma)`` it was trained on.
"""

from __future__ import annotations

from functools import lru_cache

import torch

NUM_TRAIN_TIMESTEPS = 1000  # Wan's


@lru_cache(maxsize=8)
def _grid(shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    from vega3d.simulator.noise import flow_sigma_grid

    timesteps, sigmas = flow_sigma_grid(shift, NUM_TRAIN_TIMESTEPS)
    return torch.from_numpy(timesteps), torch.from_numpy(sigmas)


def draw_noise_level(
    generator: torch.Generator, shift: float, logit_mean: float, logit_std: float
) -> tuple[int, float]:
    """``(t, sigma)`` for one clip: ``u`` from diffusers' logit-normal density (``generator``),
    then the point ``int(u * 1000)`` of Wan's grid at ``shift`` (the module docstring)."""
    from diffusers.training_utils import compute_density_for_timestep_sampling

    u = compute_density_for_timestep_sampling("logit_normal", 1, logit_mean, logit_std, generator=generator)
    index = min(int(u[0] * NUM_TRAIN_TIMESTEPS), NUM_TRAIN_TIMESTEPS - 1)  # sigmoid may round to 1.0
    timesteps, sigmas = _grid(float(shift))
    return int(timesteps[index]), float(sigmas[index])
