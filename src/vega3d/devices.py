"""Checking a user-given torch device and dtype before any work starts (the one parser of each)."""

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
    problem = None
    if device.type == "cuda" and not torch.cuda.is_available():
        build = (
            "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, but no GPU is visible"
        )
        problem = (
            f"{name!r} asked for, but this torch {torch.__version__} is {build}; "
            "use cpu, or install a CUDA build of torch (README, 'GPU users')"
        )
    elif device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        problem = f"{name!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist"
    elif device.type == "mps" and not torch.backends.mps.is_available():
        problem = "'mps' asked for, but MPS is not available on this machine"
    if problem:
        raise Vega3DError(f"{what}: {problem}")
    return device


#: Names :func:`parse_dtype` accepts (with or without a ``torch.`` prefix).
DTYPE_NAMES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}  # fmt: skip


def parse_dtype(dtype, what: str = "dtype") -> torch.dtype:
    """``dtype`` as a floating :class:`torch.dtype`: a torch dtype (float32, bfloat16, float16) or
    one of :data:`DTYPE_NAMES`. ``what`` names the argument in the error message."""
    if isinstance(dtype, torch.dtype) and dtype in DTYPE_NAMES.values():
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in DTYPE_NAMES:
        return DTYPE_NAMES[dtype.removeprefix("torch.")]
    raise Vega3DError(f"{what}: got {dtype!r}; expected float32, bfloat16 or float16 (or fp32/bf16/fp16/half)")


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` → ``"bfloat16"`` (how configs and records spell a dtype)."""
    return str(dtype).removeprefix("torch.")
