"""The released model's frame preprocessing (docs/release.md, "Frames as images").

The release feeds every sampled frame as its own image, prepared by VGGT's
``load_and_preprocess_images`` (mode "crop") and then ``prepare_image_inputs``:

1. resize to 518 px wide and round(h·518/w/14)·14 high, PIL bicubic, values in [0, 1];
2. centre-crop the height to 518 when it is taller;
3. trim both sides down to multiples of 28, keeping the top-left.

A 640 × 480 frame becomes 504 × 392: Qwen2.5-VL's ``image_grid_thw`` (1, 28, 36), 252 LLM
tokens. The same frames go to the Qwen image processor (``do_rescale=False``) and to the Wan
simulator (:func:`release_image_inputs`: :meth:`vega3d.mllm.infer.Answerer.prepare` with
``frames_as="images"``, and training with ``data.frames_as: images``).
"""

from __future__ import annotations

import numpy as np
import torch

from vega3d.errors import Vega3DError

#: Frame width after the resize, and the largest height kept by the centre crop.
RELEASE_SIZE = 518
#: The resized height is a multiple of this (the VGGT patch).
RELEASE_PATCH = 14
#: Both sides are trimmed to a multiple of this (Qwen2.5-VL's 14-px patch × 2 × 2 merge).
RELEASE_MULTIPLE = 28


def release_resize(height: int, width: int) -> tuple[int, int]:
    """(height, width) a ``height`` × ``width`` frame is resized to before the crop: 518 wide,
    round(height·518/width/14)·14 high (the release's expression, Python's rounding)."""
    return round(height * (RELEASE_SIZE / width) / RELEASE_PATCH) * RELEASE_PATCH, RELEASE_SIZE


def release_image_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) of a ``height`` × ``width`` frame after the release's preprocessing:
    resized, centre-cropped to at most 518 high, trimmed to multiples of 28. 480 × 640 → 392 × 504."""
    resized, w = release_resize(height, width)
    h = min(resized, RELEASE_SIZE) // RELEASE_MULTIPLE * RELEASE_MULTIPLE
    if h == 0:
        raise Vega3DError(
            f"frame {height}x{width} (HxW): too wide for the release's preprocessing (resized to 518 px wide it "
            f"is {resized} px high, under {RELEASE_MULTIPLE})"
        )
    return h, w // RELEASE_MULTIPLE * RELEASE_MULTIPLE


def preprocess_release_frames(frames) -> torch.Tensor:
    """Frames (N,H,W,3) uint8 or (N,3,H,W) float [0,1] → (N,3,h,w) float32 in [0,1], as the release
    prepares its images (module docstring; (h, w) = :func:`release_image_size`).

    The resize is PIL's bicubic on uint8 frames, as the release's: the values lie on the 1/255 grid.
    (The release decodes its videos itself; a different decoder may differ by rounding.)"""
    from PIL import Image

    from vega3d.mllm.processing import to_uint8_frames

    frames = to_uint8_frames(frames, "frames")
    height, width = frames.shape[1:3]
    h, w = release_image_size(height, width)
    rh, rw = release_resize(height, width)
    top = (rh - RELEASE_SIZE) // 2 if rh > RELEASE_SIZE else 0
    resized = [np.asarray(Image.fromarray(f).resize((rw, rh), Image.Resampling.BICUBIC)) for f in frames]
    out = np.stack(resized)[:, top : top + h, :w]
    return torch.from_numpy(np.ascontiguousarray(out)).permute(0, 3, 1, 2).float() / 255


def release_image_inputs(processor, frames) -> tuple[np.ndarray, dict]:
    """Frames (N,H,W,3) uint8 or (N,3,H,W) float [0,1] as the release's N images: the prepared frames
    (N,h,w,3) uint8 — what the model and the simulator see — and ``processor``'s image inputs
    (:meth:`~vega3d.mllm.processing.Vega3DProcessor.frame_image_inputs`: ``pixel_values``,
    ``image_grid_thw`` (N,3))."""
    from vega3d.mllm.processing import to_uint8_frames

    images = preprocess_release_frames(frames)  # on the 1/255 grid: exact as uint8
    return np.ascontiguousarray(to_uint8_frames(images)), processor.frame_image_inputs(images)
