"""Put a full-frame feature grid onto an MLLM's visual-token grid, in its token order.

Every feature grid in vega3d covers the full frame (DESIGN.md), so registering the
generative grid against a semantic token grid is a resampling between two grids over the
same pixels (:func:`vega3d.grids.resample_grid`), followed by the MLLM's token order.

Qwen2.5-VL (transformers' ``Qwen2VLImageProcessor`` / ``Qwen2VLVideoProcessor`` and
``Qwen2_5_VisionTransformerPretrainedModel``):

- each frame is resized *whole* (``smart_resize``, no crop) to ``Hp*14 x Wp*14`` pixels,
  ``Hp`` and ``Wp`` even; ``grid_thw = (T, Hp, Wp)`` counts 14-px patches;
- frames are grouped in temporal patches of 2; an odd frame count is padded by repeating
  the last frame (``patchify`` in the video processor); a single image is duplicated;
- ``pixel_values`` rows run over (t, Hp/2, Wp/2, 2, 2): each 2x2 block of patches is
  contiguous, and the vision tower's merger turns each block into one LLM token (window
  attention reorders tokens internally and restores this order at the end).

So merged token ``(t, i, j)`` covers rows ``[i*H/(Hp/2), (i+1)*H/(Hp/2))`` and columns
``[j*W/(Wp/2), (j+1)*W/(Wp/2))`` of the original ``H x W`` frames ``2t`` and ``2t+1``
(``2t+1`` clamped to the last frame), exactly the cell ``(i, j)`` of an ``(Hp/2, Wp/2)``
full-frame grid. :func:`align_to_qwen_tokens` resamples each frame's grid onto that grid
and averages the two frames of each temporal patch (the tower's patch embedding mixes the
two frames linearly, so the mean is the matching summary), padding odd counts the same way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vega3d.errors import Vega3DError
from vega3d.grids import resample_grid

#: How a generative grid is resampled onto a token grid (:func:`align_to_qwen_tokens`).
INTERPOLATIONS = ("area", "bilinear")


def _check_features(name: str, features: torch.Tensor) -> None:
    if features.ndim != 4 or features.shape[0] == 0:
        raise Vega3DError(f"{name}: features must be (N, h, w, C) with N >= 1, got shape {tuple(features.shape)}")


def align_to_qwen_tokens(
    features: torch.Tensor,
    grid_thw,
    spatial_merge_size: int = 2,
    temporal_patch_size: int = 2,
    *,
    keep_merge_window: bool = False,
    interpolation: str = "area",
) -> torch.Tensor:
    """Features of N frames (N, h, w, C) -> (T * Hp/m * Wp/m, C) in Qwen2.5-VL merged-token order.

    ``grid_thw`` is what Qwen's processor reports for these frames (``video_grid_thw`` row,
    or ``image_grid_thw`` row for one image): T must be ``ceil(N / temporal_patch_size)``.
    Output dtype = input dtype (the temporal mean is taken in float32).

    ``keep_merge_window=True`` resamples onto the 14-px patch grid (Hp, Wp) instead and
    returns (T * Hp/m * Wp/m, m*m*C): each token's m x m patches concatenated in the order
    Qwen's merger concatenates them (row-major within the window) — the input of an
    MLP merger like the released ``GeometryFeatureMerger``. The mean of the m*m chunks is
    the default output when the grids divide evenly.

    ``interpolation``: ``"area"`` (default) resamples with :func:`vega3d.grids.resample_grid`
    (exact cell averages for whole factors, antialiased bilinear otherwise, so every source
    cell contributes); ``"bilinear"`` samples plain bilinear at the target cell centres
    (``F.interpolate(..., "bilinear", align_corners=False)``, no antialiasing, float32) — what
    the released spatial-reasoning code does (``GenerativeVisionEncoder._align_to_grid``).
    Both are the identity when the sizes agree.
    """
    _check_features("align_to_qwen_tokens", features)
    thw = tuple(int(v) for v in torch.as_tensor(grid_thw).reshape(-1).tolist())
    m, tp = int(spatial_merge_size), int(temporal_patch_size)
    n, patches = features.shape[0], math.ceil(features.shape[0] / tp)
    if interpolation not in INTERPOLATIONS:
        raise Vega3DError(f"align_to_qwen_tokens: interpolation {interpolation!r}; valid: {', '.join(INTERPOLATIONS)}")
    fits = len(thw) == 3 and min(thw) > 0 and thw[0] == patches and thw[1] % m == 0 and thw[2] % m == 0
    if not fits:  # one check of grid_thw against the features
        raise Vega3DError(
            f"align_to_qwen_tokens: features of N={n} frames (Qwen's processor packs them into ceil({n}/{tp}) = "
            f"{patches} temporal patches) and grid_thw {thw} (T={thw[0] if thw else None}); expected one (T, Hp, Wp) "
            f"triple of positive integers, T = {patches}, Hp and Wp divisible by spatial_merge_size={m}"
        )
    t, hp, wp = thw
    rows, cols = (hp, wp) if keep_merge_window else (hp // m, wp // m)
    grid = _resample(features, (rows, cols), interpolation)
    if pad := t * tp - n:  # the processor repeats the last frame
        grid = torch.cat([grid, grid[-1:].expand(pad, -1, -1, -1)])
    merged = grid.float().reshape(t, tp, rows, cols, -1).mean(dim=1)
    if keep_merge_window:  # (t, Hp, Wp, C) -> (t, Hp/m, Wp/m, m, m, C): Qwen's (t, h//m, w//m, m, m) rows
        merged = merged.reshape(t, hp // m, m, wp // m, m, -1).permute(0, 1, 3, 2, 4, 5)
    return merged.reshape(t * (hp // m) * (wp // m), -1).to(features.dtype)


def _resample(features: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    """(N, h, w, C) onto ``size`` by ``interpolation`` (see :func:`align_to_qwen_tokens`)."""
    if interpolation == "area" or tuple(features.shape[1:3]) == tuple(size):
        return resample_grid(features, size)
    x = F.interpolate(features.permute(0, 3, 1, 2).float(), size=size, mode="bilinear", align_corners=False)
    return x.to(features.dtype).permute(0, 2, 3, 1)


def align_to_qwen_image(features: torch.Tensor, grid_thw, spatial_merge_size: int = 2) -> torch.Tensor:
    """One image's grid (1, h, w, C) or (h, w, C) -> (Hp/m * Wp/m, C); ``grid_thw`` = (1, Hp, Wp).

    The image processor duplicates the image into both temporal slots, so this is
    :func:`align_to_qwen_tokens` with N = 1.
    """
    if features.ndim == 3:
        features = features[None]
    thw = torch.as_tensor(grid_thw).reshape(-1).tolist()
    if features.ndim != 4 or features.shape[0] != 1 or thw[:1] != [1]:
        raise Vega3DError(
            f"align_to_qwen_image: expected one image (1, h, w, C) and grid_thw (1, Hp, Wp), "
            f"got features {tuple(features.shape)} and grid_thw {tuple(thw)}"
        )
    return align_to_qwen_tokens(features, grid_thw, spatial_merge_size=spatial_merge_size)


def align_to_grid(features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Per-frame square/rectangular token grids (SigLIP-style, LLaVA-Video): (N, h, w, C) -> (N, h2*w2, C).

    Tokens row-major per frame. Valid when the semantic encoder sees the whole frame
    (resized, not cropped or padded), as every vega3d grid does.
    """
    _check_features("align_to_grid", features)
    h2, w2 = (int(v) for v in size)
    grid = resample_grid(features, (h2, w2))
    return grid.reshape(grid.shape[0], h2 * w2, grid.shape[-1])


def qwen_grid_thw(
    num_frames: int,
    height: int,
    width: int,
    *,
    min_pixels: int,
    max_pixels: int,
    patch_size: int = 14,
    merge_size: int = 2,
    temporal_patch_size: int = 2,
) -> tuple[int, int, int]:
    """The ``grid_thw`` Qwen's processor reports for ``num_frames`` frames of ``height x width``.

    Uses transformers' own ``smart_resize``; ``min_pixels`` / ``max_pixels`` are the
    processor's ``size["shortest_edge"]`` / ``size["longest_edge"]`` (they differ between the
    image and video processors and per checkpoint, so they are required here).
    """
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    if num_frames <= 0 or height <= 0 or width <= 0:
        raise Vega3DError(f"qwen_grid_thw: num_frames, height, width must be positive, got {num_frames, height, width}")
    rh, rw = smart_resize(height, width, factor=patch_size * merge_size, min_pixels=min_pixels, max_pixels=max_pixels)
    return math.ceil(num_frames / temporal_patch_size), rh // patch_size, rw // patch_size
