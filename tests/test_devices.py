import pytest
import torch

from vega3d import Vega3DError
from vega3d.devices import dtype_name, parse_dtype, resolve_device


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("float32", torch.float32),
        ("fp32", torch.float32),
        ("float", torch.float32),
        ("torch.bfloat16", torch.bfloat16),
        ("bf16", torch.bfloat16),
        ("half", torch.float16),
        ("fp16", torch.float16),
        (torch.float16, torch.float16),
    ],
)
def test_parse_dtype_accepts_every_spelling(given, expected):
    assert parse_dtype(given) is expected
    assert dtype_name(expected) == str(expected).split(".")[1]


@pytest.mark.parametrize("bad", ["float64", "int8", torch.int32, torch.float64, 16, None])
def test_parse_dtype_names_the_argument(bad):
    with pytest.raises(Vega3DError, match=r"^--vae-dtype: got .*expected float32, bfloat16 or float16"):
        parse_dtype(bad, "--vae-dtype")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(Vega3DError, match="'gpu' is not a torch device"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(Vega3DError, match="asked for, but this torch"):
            resolve_device("cuda:0", what="--device")
