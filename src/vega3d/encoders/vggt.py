"""``vggt``: VGGT's aggregator tokens (Wang et al. 2025), when the ``vggt`` package is importable.

VGGT is published as source (github.com/facebookresearch/vggt), not on the package registry, so
vega3d does not depend on it: install it yourself (``pip install`` from a clone of that repository)
and this encoder uses it; without it, building the encoder is one error saying so.

Loading: ``vggt.models.vggt.VGGT.from_pretrained(folder)`` (a local copy of ``facebook/VGGT-1B``:
``config.json`` + ``model.safetensors``). Input: the frames resized whole (no crop) to ``width``
(default 518, VGGT's) x a height that keeps the aspect ratio, rounded to a multiple of the patch
size 14 (the released preprocessing also crops the height to 518 px; we never crop), in [0, 1]
(the aggregator normalises them itself). All frames of a call — or ``clip_frames`` at a time — go
through the aggregator together: its global-attention layers relate every frame to every other,
so a frame's grid depends on the frames beside it (the first frame is VGGT's reference camera).
Output: ``aggregated_tokens_list[layer]`` (24 layers; each token is [frame-attention |
global-attention] output, 2 x 1024 channels), camera and register tokens (the first
``patch_start_idx``) dropped, patches reshaped to (height/14, width/14): (N, h, w, 2048) float32.
"""

from __future__ import annotations

import torch

from vega3d.devices import dtype_name, parse_dtype
from vega3d.encoders.common import Encoder, model_config, resize_whole
from vega3d.encoders.unet import check_int
from vega3d.errors import Vega3DError

NAME = "vggt encoder"
PATCH = 14
MISSING = (
    "vggt encoder: the 'vggt' package is not importable. VGGT is not on the package registry, so vega3d does "
    "not depend on it: clone github.com/facebookresearch/vggt and `pip install -e .` it into this environment"
)


def import_vggt():
    """``vggt.models.vggt.VGGT``, or the one-line error :data:`MISSING`."""
    try:
        from vggt.models.vggt import VGGT
    except ImportError as err:
        raise Vega3DError(f"{MISSING} ({err})") from None
    return VGGT


class VGGTEncoder(Encoder):
    """VGGT aggregator-token grids (module docstring)."""

    name = "vggt"

    @classmethod
    def check_options(cls, options: dict) -> None:
        """Called by :func:`vega3d.encoders.check_encoder`: the missing package is said before any work."""
        import_vggt()

    def __init__(self, model, layer: int = -1, width: int = 518, clip_frames: int | None = None,
                 dtype: str = "float32", device: str = "cpu"):  # fmt: skip
        vggt_class = import_vggt()  # before anything else: the clear message first
        root, _ = model_config(model, NAME, "a local copy of facebook/VGGT-1B")
        self.width = check_int(width, "width", PATCH, NAME)
        if self.width % PATCH:
            raise Vega3DError(f"{NAME}: width={width}; expected a multiple of the patch size {PATCH}")
        self.clip_frames = None if clip_frames is None else check_int(clip_frames, "clip_frames", 1, NAME)
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise Vega3DError(f"{NAME}: layer={layer!r}; expected an integer index into the aggregator's layers")
        self.layer = layer
        self.dtype, self.device = parse_dtype(dtype, f"{NAME}: dtype"), torch.device(device)
        self.model = vggt_class.from_pretrained(str(root)).to(self.device, self.dtype).eval().requires_grad_(False)
        from vega3d.standin import is_stand_in

        self.config = {
            "name": self.name,
            "model": {"path": str(root.resolve())},
            "stand_in": is_stand_in(root),
            "layer": layer,
            "width": self.width,
            "height": "width x frame aspect, rounded to a multiple of 14",
            "clip_frames": self.clip_frames,
            "tokens": "aggregated_tokens_list[layer], camera + register tokens dropped",
            "dtype": dtype_name(self.dtype),
        }

    def size_for(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) a ``height x width`` frame is resized to."""
        return max(PATCH, round(height * self.width / width / PATCH) * PATCH), self.width

    @torch.no_grad()
    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        size = self.size_for(x.shape[2], x.shape[3])
        px = resize_whole(x, size)
        step = self.clip_frames or len(px)
        return torch.cat([self._grids(px[s : s + step]) for s in range(0, len(px), step)])

    def _grids(self, frames: torch.Tensor) -> torch.Tensor:
        out = self.model.aggregator(frames[None].to(self.device, self.dtype))
        tokens_list, start = out[0], out[-1]  # (tokens list, patch_start_idx); older versions return 3 items
        n = len(tokens_list)
        if not -n <= self.layer < n:
            raise Vega3DError(f"{NAME}: layer={self.layer}; the aggregator has {n} layers: expected [{-n}, {n - 1}]")
        tokens = tokens_list[self.layer][0, :, start:]  # (S, h*w, C)
        h, w = frames.shape[2] // PATCH, frames.shape[3] // PATCH
        assert tokens.shape[1] == h * w, f"{tokens.shape[1]} patch tokens for a {h}x{w} grid"
        return tokens.reshape(len(frames), h, w, -1).float().cpu()
