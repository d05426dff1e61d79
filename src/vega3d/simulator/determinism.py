"""Deterministic GPU kernels for the simulator — a process-wide switch.

:func:`enable_deterministic` (what ``WanWorldSimulator(..., deterministic=True)`` and
``vega3d extract --deterministic`` call) sets, for the whole process:

* ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless it is already set (cuBLAS's condition for
  reproducible results; read when cuBLAS creates its first workspace, so set it at the
  program's entry, before any CUDA work, to be sure it applies);
* ``torch.use_deterministic_algorithms(True, warn_only=True)``: deterministic kernels where
  torch has them (cuDNN convolutions included), a warning naming each op that has none;
* ``torch.backends.cudnn.benchmark = False``: cuDNN picks its algorithms by fixed rules,
  not by timing runs (timing can choose differently from one run to the next).

These are global settings of torch, not of one simulator: they stay on after the simulator is
gone and apply to everything else in the process (a training loop's backward passes included,
which may then run slower or warn). Switch them on once at the program's entry — in a script
call :func:`enable_deterministic` first thing — rather than in the middle of a run.
``warn_only=True`` keeps a training process working when one of its ops has no deterministic
kernel (torch then warns instead of raising).

What it buys is described in docs/simulator.md ("Determinism").
"""

from __future__ import annotations

import os

import torch

#: The cuBLAS workspace setting torch documents for reproducible results.
CUBLAS_WORKSPACE = ":4096:8"


def enable_deterministic() -> None:
    """Switch on deterministic kernels for the whole process (see the module docstring)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def deterministic_enabled() -> bool:
    """Whether torch's deterministic algorithms are switched on in this process."""
    return torch.are_deterministic_algorithms_enabled()
