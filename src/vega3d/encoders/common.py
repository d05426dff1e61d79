"""What every encoder shares: the input check, the output contract, resizing.

An encoder is any object with ``name`` (str), ``config`` (JSON-serialisable dict) and
``__call__(frames) -> grid`` where ``frames`` is (N, 3, H, W) float in [0, 1] and
``grid`` is (N, h, w, C) float32 on the CPU, cell (i, j) covering pixels
``[j W/w, (j+1) W/w) x [i H/h, (i+1) H/h)`` of the whole frame (vega3d.grids).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch
import torch.nn.functional as F

from vega3d.errors import Vega3DError
from vega3d.files import read_json


class Encoder(ABC):
    """Base of the encoders: ``encoder(frames)`` checks the frames once (:func:`check_frames`, the
    edge of every encoder) and returns ``_encode`` of them: the grid. The argument checks the
    model-folder encoders share are here too (:func:`model_config`, :func:`check_layer`,
    :func:`normalisation`)."""

    name = "encoder"

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        return self._encode(check_frames(frames, f"{self.name} encoder"))

    @abstractmethod
    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """The (N, h, w, C) float32 grid of checked frames ``x`` (N, 3, H, W) float32 in [0, 1]."""


def model_config(model, where: str, expected: str) -> tuple[Path, dict]:
    """``(folder, its config.json)`` for the model folder ``model`` (``expected``: what it should be,
    in words, for the error when there is no readable config.json)."""
    root = Path(model).expanduser()
    return root, read_json(root / "config.json", f"{where}: no config.json in the model folder ({expected})")


def check_layer(layer, n: int, where: str) -> int | None:
    """``layer``: None or an index into ``n`` hidden states (0 = the embeddings, negative counts from the end)."""
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int) or not -n <= layer < n):
        raise Vega3DError(
            f"{where}: layer {layer!r}, {n - 1} layers: {n} hidden states, index 0 = embeddings; expected an integer "
            f"in [{-n}, {n - 1}] (negative counts from the end) or None (the model's last hidden state)"
        )
    return layer


def normalisation(root: Path, mean, std, files: tuple[str, ...], where: str) -> tuple[list[float], list[float]]:
    """(mean, std) as given (both), else ``image_mean`` / ``image_std`` of the first of ``files`` found
    in ``root`` (a Hugging Face preprocessor config; ``do_normalize: false`` means none); each three
    numbers, one per RGB channel (one number: the same for every channel)."""
    if mean is None and std is None:
        path = next((root / name for name in files if (root / name).is_file()), None)
        if path is None:
            raise Vega3DError(
                f"{where}: {root} has no {' or '.join(files)}; pass mean=... and std=... "
                f"(the model's image normalisation) explicitly"
            )
        cfg = read_json(path, f"{where}: preprocessor config")
        if cfg.get("do_normalize", True) is False:
            return [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
        mean, std, where = cfg.get("image_mean"), cfg.get("image_std"), f"{path}: image_"
    else:
        where = f"{where}: "
    return _triple(mean, f"{where}mean"), _triple(std, f"{where}std")


def _triple(value, where: str) -> list[float]:
    """Three numbers (one number: the same for every channel)."""
    values = [value] * 3 if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not (
        isinstance(values, (list, tuple)) and len(values) == 3 and all(isinstance(v, (int, float)) for v in values)
    ):
        raise Vega3DError(
            f"{where}: expected 3 numbers (one per RGB channel; mean and std are given together), found {value!r}"
        )
    return [float(v) for v in values]


def check_frames(frames, where: str) -> torch.Tensor:
    """Validate (N, 3, H, W) float frames in [0, 1]; return them as float32."""
    shaped = isinstance(frames, torch.Tensor) and frames.ndim == 4 and frames.shape[1] == 3 and frames.shape[0] >= 1
    if not (shaped and frames.is_floating_point() and bool(torch.isfinite(frames).all())) or not (
        0 <= frames.min() <= frames.max() <= 1
    ):
        got = type(frames).__name__
        if isinstance(frames, torch.Tensor):
            got = f"{frames.dtype} {tuple(frames.shape)}" + (
                f" in [{frames.min().item()}, {frames.max().item()}]" if shaped else ""
            )
        raise Vega3DError(
            f"{where}: frames must be a torch tensor (N, 3, H, W), N >= 1, of finite float in [0, 1] "
            f"(use Scene.frames()), got {got}"
        )
    return frames.float()


def grid_for_stride(height: int, width: int, stride: float) -> tuple[int, int]:
    """(h, w) of a grid with cells of about ``stride`` pixels over a ``height x width`` frame."""
    return max(1, round(height / stride)), max(1, round(width / stride))


def resize_whole(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (N, 3, H, W) to ``size`` = (h, w) keeping the whole frame (no crop; aspect may change)."""
    if tuple(frames.shape[2:]) == tuple(size):
        return frames
    down = size[0] < frames.shape[2] or size[1] < frames.shape[3]
    return F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=down).clamp_(0.0, 1.0)
