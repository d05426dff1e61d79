"""Frame sampling: which frames of a sequence a model sees.

The rule is the one LLaVA-Video (and the Video-3D LLM / VEGA-3D code built on it) uses for
uniform sampling: ``np.linspace(0, n - 1, num, dtype=int)``, i.e. ``num`` evenly spaced
positions from the first to the last frame, **truncated** (floored) to integers, not rounded.
It always includes the first and the last frame (for ``num >= 2``) and has no duplicates
whenever ``num <= n``. Asking for at least as many frames as there are returns every frame
once (``list(range(n))``) - the same as LLaVA-Video, which only subsamples when the video is
longer than the budget; callers can compare ``len(result) < num`` to report it.
"""

from __future__ import annotations

import numpy as np

from vega3d.errors import Vega3DError


def sample_frames(num_available: int, num: int) -> list[int]:
    """Uniformly spaced positions ``0 <= i < num_available`` (sorted, unique, ``min(num, n)`` of them).

    ``np.linspace(0, num_available - 1, num, dtype=int)`` when ``num < num_available``, else all
    positions. E.g. ``sample_frames(10, 4) == [0, 3, 6, 9]``, ``sample_frames(10, 3) == [0, 4, 9]``.
    """
    for name, value in (("num_available", num_available), ("num", num)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise Vega3DError(f"sample_frames: {name} must be >= 1 and an int, got {value!r}")
    if num >= num_available:
        return list(range(int(num_available)))
    # the step (n - 1) / (num - 1) is >= 1 here, so the floored positions are strictly increasing
    return np.linspace(0, num_available - 1, int(num), dtype=int).tolist()
