"""The one way the simulator checks what a user hands it: ``check(ok, what, found, expected)``.

Arguments are checked where they enter (``from_pretrained``, the constructor, the public
methods, the files a folder holds); everything inside trusts them. Each failed check is one
:class:`~vega3d.errors.Vega3DError` line ``what: found; expected ...``.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch

from vega3d.errors import Vega3DError


def check(ok: bool, what: str, found: str, expected: str) -> None:
    """Raise ``Vega3DError("what: found; expected EXPECTED")`` unless ``ok``."""
    if not ok:
        raise Vega3DError(f"{what}: {found}; expected {expected}")


def is_int(value, lo: int | None = None, hi: int | None = None) -> bool:
    """``value`` is an integer (not a bool) in ``[lo, hi]`` (None: unbounded)."""
    return (
        isinstance(value, Integral)
        and not isinstance(value, bool)
        and (lo is None or value >= lo)
        and (hi is None or value <= hi)
    )


def is_number(value, lo: float | None = None, hi: float | None = None) -> bool:
    """``value`` is a finite real number (not a bool) in ``[lo, hi]`` (None: unbounded)."""
    return (
        isinstance(value, Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
        and (lo is None or value >= lo)
        and (hi is None or value <= hi)
    )


def check_tensor(value, what: str, shape: tuple, meaning: str = "") -> torch.Tensor:
    """``value`` when it is a finite floating-point tensor of ``shape`` (``None``: any size >= 1).

    ``meaning`` (e.g. ``" (frames, z_dim, ...)"``) is appended to the expected shape in errors."""
    want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
    expected = f"a finite float tensor of shape {want}{' with N >= 1' if None in shape else ''}{meaning}"
    is_tensor = isinstance(value, torch.Tensor)
    kind = f"{value.dtype} tensor" if is_tensor else type(value).__name__
    check(is_tensor and value.is_floating_point(), what, f"got {kind}", expected)
    fits = value.ndim == len(shape) and all(n == s or (s is None and n >= 1) for n, s in zip(value.shape, shape))
    check(fits, what, f"shape {tuple(value.shape)}", expected)
    check(bool(torch.isfinite(value).all()), what, "contains NaN or infinite values", expected)
    return value
