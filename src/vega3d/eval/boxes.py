"""Axis-aligned 3D boxes and their IoU, as the grounding benchmarks score them.

A box is ``[cx, cy, cz, dx, dy, dz]``: centre and full side lengths along the
scene axes, in metres (ScanNet axis-aligned coordinates). This is the box layout
of the Video-3D LLM annotation files (``box``, ``gt_box``, ``box_input``).

:func:`box3d_iou` follows Video-3D LLM ``llava/eval/box_utils.py::box3d_iou``
(itself LEO's / ScanRefer's): the box is turned into min/max corners, volumes
are taken from those corners, and the union gets ``+1e-8`` in the denominator.
The epsilon matters only at exact thresholds: two boxes whose true IoU is
exactly 0.5 (one nested in the other at half the volume) score
``0.5 / (1 + 1e-8) < 0.5`` and fail Acc@0.5 in the official code — and here.
Pass ``eps=0.0`` for the textbook IoU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vega3d.errors import Vega3DError

OFFICIAL_EPS = 1e-8
"""The ``+1e-8`` the official scorers add to the union volume."""


def as_box(value, *, where: str = "box") -> np.ndarray:
    """Validate one box and return it as a float64 array of shape (6,).

    Raises :class:`Vega3DError` naming ``where`` when the value is not six
    finite numbers or a side length is negative.
    """
    try:
        box = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        box = None
    if box is None or box.shape != (6,):
        shape = "" if box is None else f"shape {box.shape} "
        raise Vega3DError(f"{where}: expected 6 numbers [cx, cy, cz, dx, dy, dz], found {shape}({value!r})")
    if not np.all(np.isfinite(box)):
        raise Vega3DError(f"{where}: box has a non-finite value (NaN or inf): {value!r}")
    if np.any(box[3:] < 0):
        raise Vega3DError(f"{where}: box sizes dx, dy, dz must be >= 0, found {box[3:].tolist()}")
    return box


def box3d_iou(a: Sequence[float], b: Sequence[float], *, eps: float = OFFICIAL_EPS) -> float:
    """IoU of two axis-aligned boxes ``[cx, cy, cz, dx, dy, dz]``.

    Touching boxes (shared face, no overlap volume) give 0; a box nested in
    another gives the volume ratio (divided by ``1 + eps`` of the union);
    zero-volume boxes give 0, never NaN. NaN/inf or negative sizes raise
    :class:`Vega3DError`.
    """
    return checked_iou(as_box(a, where="box a"), as_box(b, where="box b"), eps=eps)


def checked_iou(box_a: Sequence[float], box_b: Sequence[float], *, eps: float = OFFICIAL_EPS) -> float:
    """:func:`box3d_iou` of boxes already checked with :func:`as_box` (the benchmark modules
    check every box when they read it)."""
    box_a, box_b = np.asarray(box_a, dtype=np.float64), np.asarray(box_b, dtype=np.float64)
    lo_a, hi_a = box_a[:3] - box_a[3:] / 2, box_a[:3] + box_a[3:] / 2
    lo_b, hi_b = box_b[:3] - box_b[3:] / 2, box_b[:3] + box_b[3:] / 2
    overlap = np.maximum(np.minimum(hi_a, hi_b) - np.maximum(lo_a, lo_b), 0.0)
    inter = float(overlap[0] * overlap[1] * overlap[2])
    vol_a = float(np.prod(hi_a - lo_a))
    vol_b = float(np.prod(hi_b - lo_b))
    union = vol_a + vol_b - inter + eps
    if union <= 0.0 or inter <= 0.0:
        return 0.0
    value = inter / union
    assert math.isfinite(value), (box_a, box_b)  # finite boxes keep it finite
    return value
