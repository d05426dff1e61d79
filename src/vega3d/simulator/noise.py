"""The noise level at which the simulator reads the DiT: Wan's own flow schedule.

Wan2.1 samples with ``FlowUniPCMultistepScheduler(num_train_timesteps=1000, shift=1)`` and
``set_timesteps(steps, shift=shift)``. With ``steps = num_train_timesteps`` that builds the
grid (float64 unless noted; ``n = num_train_timesteps``, ``s = shift``)::

    sigma_max = float32(1 - 1/n)            # 0.999 rounded through float32, as Wan does
    u_k       = linspace(sigma_max, 0, n + 1)[k]          for k = 0 .. n-1
    sigma_k   = s * u_k / (1 + (s - 1) * u_k)             # the shift
    t_k       = int64(sigma_k * n)                        # truncation, the DiT's timestep

:func:`flow_noise_level` picks the grid point whose ``t_k`` is nearest to the requested
``timestep`` (ties go to the larger timestep, i.e. the first grid point) and returns the DiT
timestep ``t_k`` and ``sigma_k`` rounded to float32. For ``timestep=300, shift=5`` that is
``t = 299, sigma = 0.29992384``; 100 → 101, 200 → 201, 500 → 500, 700 → 700.

The same grid comes out of diffusers'
``UniPCMultistepScheduler(use_flow_sigmas=True, flow_shift=s, prediction_type="flow_prediction")``
when given ``set_timesteps(sigmas=linspace(float32(1 - 1/n), 0, n + 1)[:-1])``
(tests/simulator/test_noise.py checks this); its default ``set_timesteps(1000)`` grid,
``linspace(1, 1/n, n+1)``, is slightly different and is *not* Wan's.

The noised latent is ``x_t = (1 - sigma) * z + sigma * eps`` (rectified flow).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from vega3d.config import Int
from vega3d.simulator.checks import Options, check

#: The flow shift of Wan's sigma schedule (declared once: the schedule's and the simulator's option).
Shift = Annotated[float, Field(gt=0, description="a finite number > 0 (Wan2.1 T2V uses 5.0)")]


class FlowSchedule(Options):
    """Wan's flow schedule (:func:`flow_sigma_grid`) and a timestep on it (:func:`flow_noise_level`)."""

    shift: Shift = 5.0  # sigma's shift
    num_train_timesteps: Int = Field(1000, ge=1, description="an integer >= 1 (Wan uses 1000)")  # grid size n
    # the requested DiT timestep; its upper bound, num_train_timesteps, is checked by flow_noise_level
    timestep: float = Field(0.0, ge=0, description="a finite number in [0, num_train_timesteps]")


def flow_sigma_grid(shift: float = 5.0, num_train_timesteps: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Wan's FlowUniPC grid at ``num_train_timesteps`` steps.

    Returns ``(timesteps (n,) int64, sigmas (n,) float32)``, both descending.
    """
    schedule = FlowSchedule(shift=shift, num_train_timesteps=num_train_timesteps)
    return _grid(schedule.shift, schedule.num_train_timesteps)


def _grid(shift: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    sigma_max = float(np.float32(1.0 - 1.0 / n))
    u = np.linspace(sigma_max, 0.0, n + 1)[:-1]
    sigmas = shift * u / (1.0 + (shift - 1.0) * u)
    timesteps = (sigmas * n).astype(np.int64)
    return timesteps, sigmas.astype(np.float32)


def flow_noise_level(timestep: float, shift: float = 5.0, num_train_timesteps: int = 1000) -> tuple[int, float]:
    """The DiT timestep and noise level sigma for a requested ``timestep``.

    ``timestep`` is on the ``[0, num_train_timesteps]`` scale (the paper's "noise ratio" 0.3 is
    ``timestep=300``). Returns ``(t, sigma)``: the integer timestep fed to the DiT and the float32
    sigma (as a Python float) used in ``x_t = (1 - sigma) z + sigma eps``.
    """
    s = FlowSchedule(timestep=timestep, shift=shift, num_train_timesteps=num_train_timesteps)
    n = s.num_train_timesteps
    check(s.timestep <= n, "timestep", f"got {timestep!r}", f"a finite number in [0, {n}]")
    timesteps, sigmas = _grid(s.shift, n)
    k = int(np.argmin(np.abs(timesteps.astype(np.float64) - s.timestep)))
    return int(timesteps[k]), float(sigmas[k])
