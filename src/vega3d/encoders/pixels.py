"""``pixels``: patch-averaged colour — what raw appearance alone achieves."""

from __future__ import annotations

import torch

from vega3d.encoders.common import Encoder, grid_for_stride
from vega3d.errors import Vega3DError
from vega3d.grids import resample_grid


class PixelEncoder(Encoder):
    """Mean RGB of each ``stride x stride``-pixel cell: (N, h, w, 3) with ``h, w = round(H/stride), round(W/stride)``.

    With ``center`` (default) 0.5 is subtracted, so the cosine compares colours around
    mid-grey (uncentred [0, 1] colours are all nearly parallel).
    """

    name = "pixels"

    def __init__(self, stride: float = 16.0, center: bool = True):
        if not stride > 0:
            raise Vega3DError(f"pixels encoder: stride must be > 0 pixels, got {stride!r}")
        self.stride, self.center = float(stride), bool(center)
        self.config = {"name": self.name, "stride": self.stride, "center": self.center}

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        grid = resample_grid(x.permute(0, 2, 3, 1), grid_for_stride(x.shape[2], x.shape[3], self.stride))
        return (grid - 0.5 if self.center else grid).float().contiguous()
