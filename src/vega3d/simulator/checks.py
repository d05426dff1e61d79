"""How the simulator checks what a user hands it: options declared once, everything else in one line.

Arguments are checked where they enter (``from_pretrained``, the constructor, the public
methods, the files a folder holds); everything inside trusts them. Options are fields of an
:class:`Options` model (declared: type, range, choices); what depends on something else (the
model's block count, a tensor's shape) is one call of :func:`check`. Either way a failure is one
:class:`~vega3d.errors.Vega3DError` line ``what: found; expected ...``.
"""

from __future__ import annotations

import torch

from vega3d.config import Config
from vega3d.errors import Vega3DError


def check(ok: bool, what: str, found: str, expected: str) -> None:
    """Raise ``Vega3DError("what: found; expected EXPECTED")`` unless ``ok``."""
    if not ok:
        raise Vega3DError(f"{what}: {found}; expected {expected}")


class Options(Config):
    """Options of a simulator function, declared once; built directly (``Model(**options)``).

    Each field's ``description`` says what is expected: a bad value is ``field: got VALUE;
    expected DESCRIPTION`` (:meth:`vega3d.config.Config.error`), the wording of :func:`check`."""

    WHAT = ""


def tensor_found(value, finite: bool = True) -> str:
    """What an error says was found: ``shape (2, 3), dtype torch.float32`` (plus ``, empty``, and
    ``, with NaN or infinite values`` unless ``finite``) for a tensor, ``got TYPE`` otherwise."""
    if not isinstance(value, torch.Tensor):
        return f"got {type(value).__name__}"
    extra = (", empty" if value.numel() == 0 else "") + ("" if finite else ", with NaN or infinite values")
    return f"shape {tuple(value.shape)}, dtype {value.dtype}{extra}"


def no_nan(value) -> bool:
    """False only for a floating-point tensor holding NaN or infinite values."""
    return not (isinstance(value, torch.Tensor) and value.is_floating_point()) or bool(torch.isfinite(value).all())


def check_tensor(value, what: str, shape: tuple, meaning: str = "") -> torch.Tensor:
    """``value`` when it is a finite floating-point tensor of ``shape`` (``None``: any size >= 1).

    ``meaning`` (e.g. ``" (frames, z_dim, ...)"``) is appended to the expected shape in errors."""
    want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
    expected = f"a finite float tensor of shape {want}{' with N >= 1' if None in shape else ''}{meaning}"
    finite = no_nan(value)
    fits = isinstance(value, torch.Tensor) and value.is_floating_point() and finite and value.ndim == len(shape)
    fits = fits and all(n == s or (s is None and n >= 1) for n, s in zip(value.shape, shape))
    check(fits, what, tensor_found(value, finite), expected)
    return value
