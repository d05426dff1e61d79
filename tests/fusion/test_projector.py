import pytest
import torch
from torch import nn

from vega3d.errors import Vega3DError
from vega3d.fusion import build_projector


def test_mlp2x_gelu_is_llava_layout():
    proj = build_projector("mlp2x_gelu", 12, 20)
    kinds = [type(m) for m in proj]
    assert kinds == [nn.Linear, nn.GELU, nn.Linear]
    assert (proj[0].in_features, proj[0].out_features) == (12, 20)
    assert (proj[2].in_features, proj[2].out_features) == (20, 20)
    x = torch.randn(2, 5, 12)
    expect = proj[2](torch.nn.functional.gelu(proj[0](x)))
    assert torch.equal(proj(x), expect)


def test_linear_and_deeper_mlp():
    assert isinstance(build_projector("linear", 4, 6), nn.Linear)
    proj = build_projector("mlp3x_gelu", 4, 6)
    assert sum(isinstance(m, nn.Linear) for m in proj) == 3
    assert proj(torch.randn(3, 4)).shape == (3, 6)


@pytest.mark.parametrize("name", ["mlp", "mlp0x_gelu", "identity", "mlp2x_relu"])
def test_unknown_projector(name):
    with pytest.raises(Vega3DError, match="valid: linear, mlp2x_gelu"):
        build_projector(name, 4, 6)


def test_bad_dims():
    with pytest.raises(Vega3DError, match="positive"):
        build_projector("linear", 0, 6)
