"""Checking a user-given torch device before any work starts."""

from __future__ import annotations

import torch

from vega3d.errors import Vega3DError


def resolve_device(name: str | torch.device, *, what: str = "device") -> torch.device:
    """``name`` as a :class:`torch.device`, checked to exist on this machine.

    Raises :class:`Vega3DError` for a malformed name (``"gpu"``), for CUDA on a torch build or
    machine without it (e.g. the CPU wheel the README pins), and for a device index that is
    not there.
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise Vega3DError(f"{what}: {name!r} is not a torch device; expected e.g. cpu, cuda, cuda:1, mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, but no GPU is visible"
            raise Vega3DError(f"{what}: {name!r} asked for, but this torch {torch.__version__} is {build}; "
                              "use cpu, or install a CUDA build of torch (README, 'GPU users')")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise Vega3DError(f"{what}: {name!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise Vega3DError(f"{what}: 'mps' asked for, but MPS is not available on this machine")
    return device
