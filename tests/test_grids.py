import pytest
import torch

from vega3d import Vega3DError
from vega3d.grids import cell_centers, pixel_to_cell, resample_grid


def test_cell_centres_cover_full_frame():
    c = cell_centers(30, 52, 480, 832)
    assert torch.allclose(c[0, 0], torch.tensor([8.0, 8.0]))
    assert torch.allclose(c[-1, -1], torch.tensor([832 - 8.0, 480 - 8.0]))
    # the centre maps back to cell coordinate k + 0.5
    cc = pixel_to_cell(c, 30, 52, 480, 832)
    assert torch.allclose(cc[3, 7], torch.tensor([7.5, 3.5]))


def test_resample_preserves_linear_function_of_pixel_position():
    # a feature that is a linear function of pixel x must stay that function on any grid
    h, w, H, W = 12, 20, 240, 320
    f = cell_centers(h, w, H, W)[None]  # (1, h, w, 2): the feature IS the pixel position
    for size in [(24, 40), (17, 23)]:  # upsampling: interior cells exact
        g = resample_grid(f, size)
        ref = cell_centers(*size, H, W)[None]
        inner = (slice(None), slice(2, -2), slice(2, -2))
        assert torch.allclose(g[inner], ref[inner], atol=1e-3)
    g = resample_grid(f, (6, 10))  # integer downsampling: exact average
    assert torch.allclose(g, cell_centers(6, 10, H, W)[None], atol=1e-3)


def test_resample_identity_and_errors():
    f = torch.randn(2, 4, 5, 3)
    assert resample_grid(f, (4, 5)) is f
    with pytest.raises(Vega3DError, match=r"\(N, h, w, C\)"):
        resample_grid(torch.randn(4, 5, 3), (2, 2))
    with pytest.raises(Vega3DError, match="positive"):
        resample_grid(f, (0, 2))
