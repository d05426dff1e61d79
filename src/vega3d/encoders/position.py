"""``position``: Fourier features of a cell's image position — the position-only control.

Such features know where a cell is in the image and nothing about the scene, so any
score they reach is what image position alone explains (e.g. a small camera motion makes
"the same image location" a good guess). Every probe report shows them next to the
encoder under test, on the same grid.
"""

from __future__ import annotations

import math

import torch

from vega3d.encoders.common import Encoder, grid_for_stride
from vega3d.errors import Vega3DError


class PositionEncoder(Encoder):
    """(N, h, w, 2 D S) features ``cos/sin(2 pi f (x cos a + y sin a) / W)`` of the cell centre.

    Directions ``a = k pi / D`` (k < D) and frequencies ``f`` log-spaced from
    ``min_cycles`` to ``max_cycles`` cycles per frame width (default a quarter of the grid
    width: below the grid's Nyquist rate), so the cosine of two cells depends (nearly) only
    on their pixel distance, the same in every direction. Deterministic; no weights.
    ``grid`` (h, w) fixes the grid; else ``stride`` pixels per cell.
    """

    name = "position"

    def __init__(
        self,
        stride: float = 16.0,
        grid: tuple[int, int] | None = None,
        num_directions: int = 8,
        num_frequencies: int = 8,
        min_cycles: float = 0.5,
        max_cycles: float | None = None,
    ):
        bad_grid = grid is not None and (len(grid) != 2 or min(grid) < 1)
        if bad_grid or not stride > 0 or num_directions < 1 or num_frequencies < 1 or not min_cycles > 0:
            raise Vega3DError(
                "position encoder: grid must be (h, w) >= 1 or None; stride, num_directions, num_frequencies and "
                f"min_cycles must be positive; got grid={grid!r}, stride={stride!r}, num_directions={num_directions!r}, "
                f"num_frequencies={num_frequencies!r}, min_cycles={min_cycles!r}"
            )
        self.stride, self.grid = float(stride), (tuple(int(g) for g in grid) if grid is not None else None)
        self.num_directions, self.num_frequencies = int(num_directions), int(num_frequencies)
        self.min_cycles, self.max_cycles = float(min_cycles), max_cycles
        self.config = {
            "name": self.name,
            "stride": self.stride,
            "grid": self.grid,
            "num_directions": self.num_directions,
            "num_frequencies": self.num_frequencies,
            "min_cycles": self.min_cycles,
            "max_cycles": max_cycles,
        }

    def features(self, n: int, height: int, width: int) -> torch.Tensor:
        """The (n, h, w, C) grid for ``n`` frames of ``height x width`` pixels."""
        h, w = self.grid or grid_for_stride(height, width, self.stride)
        top = self.max_cycles if self.max_cycles is not None else max(self.min_cycles, w / 4)
        freqs = torch.logspace(math.log10(self.min_cycles), math.log10(top), self.num_frequencies, dtype=torch.float64)
        angles = torch.arange(self.num_directions, dtype=torch.float64) * math.pi / self.num_directions
        dirs = torch.stack([angles.cos(), angles.sin()], -1)  # (D, 2)
        ys = (torch.arange(h, dtype=torch.float64) + 0.5) * height / h
        xs = (torch.arange(w, dtype=torch.float64) + 0.5) * width / w
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        xy = torch.stack([gx, gy], -1) / width  # isotropic: both axes in frame widths
        phase = 2 * math.pi * (xy @ dirs.T).unsqueeze(-1) * freqs  # (h, w, D, S)
        f = torch.cat([phase.cos(), phase.sin()], -1).reshape(h, w, -1).float()
        return f.unsqueeze(0).expand(n, h, w, f.shape[-1]).contiguous()

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x.shape[0], x.shape[2], x.shape[3])
