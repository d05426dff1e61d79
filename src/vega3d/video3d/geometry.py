"""Video-3D LLM geometry: world coordinates per pixel and per token, discretisation, sin3d, object cells.

Everything here follows the released Video-3D LLM / VEGA-3D code (``llava/video_utils.py``,
``llava/model/llava_arch.py``, ``llava/model/position_encoding.py``, ``llava/eval/*``); the
differences are listed in docs/video3d.md. Shapes, per frame:

- world-coordinate map: (size, size, 3), size 384 (SigLIP's input), metres, aligned scene frame;
- SigLIP patch grid: 27 x 27 cells of 14 x 14 px over the top-left 378 x 378 px (its stride-14
  "valid" patch convolution never sees the last 6 rows and columns);
- token grid: 14 x 14 bins of 27 x 27 px over the same 378 x 378 px, as released (bin centre
  27j + 13 vs the bilinear-pooled token's 27j + 13.5: docs/video3d.md, "The 378 vs 384 pixels").

Public functions (names and semantics fixed by issue 9):

- :func:`world_coordinate_map` — depth + intrinsics + pose (+ axis alignment) → (size, size, 3),
  with the ``resize`` (VEGA-3D) or ``center_crop`` (original Video-3D LLM) geometry;
- :func:`patch_world_coords` — (…, 14, 14, 3) mean world position of each token bin;
- :func:`discretize` — clamp to the scene range, voxel index, round half to even;
- :func:`sin3d` — the released ``PositionEmbeddingSine3D`` (DETR-style interleaved sinusoids);
- :func:`box_cells` — which of the 27 x 27 SigLIP cells lie in a box (>= 98 of 196 pixels);
- :func:`object_features` — mean pre-pool feature over a box's cells in all frames + sin3d(centre),
  all boxes in one pass;
- :func:`select_multi` / :func:`select_single` — Multi3DRefer / ScanRefer prediction from scores.
"""

from __future__ import annotations

import numpy as np
import torch

from vega3d.errors import Vega3DError

#: SigLIP input side (pixels) of LLaVA-Video / Video-3D LLM.
IMAGE_SIZE = 384
#: SigLIP patch side (pixels) and patches per side: 27 x 14 = 378 of the 384 pixels (the conv drops 6).
PATCH_SIZE = 14
PATCH_GRID = 27
#: Pooled token grid per frame (bilinear 27 -> 14) and the pixel bin each token's position averages.
TOKEN_GRID = 14
TOKEN_BIN = 27
#: The top-left crop both the object cells and the token positions use (27 * 14 = 14 * 27).
CROP = PATCH_GRID * PATCH_SIZE
#: Visual tokens per frame with the per-row newline (``mm_newline_position grid``).
TOKENS_PER_FRAME = TOKEN_GRID * (TOKEN_GRID + 1)

#: ``train_3d.py`` defaults, written into the released config.
VOXEL_SIZE = 0.1
MIN_XYZ = (-15.0, -15.0, -5.0)
MAX_XYZ = (15.0, 15.0, 5.0)
#: ``PositionEmbeddingSine3D`` temperature; InfoNCE temperature and Multi3DRefer probability mass.
SIN3D_TEMPERATURE = 10000.0
GROUND_TEMPERATURE = 0.07
MULTI_MASS = 0.4
#: Scan2Cap: a GT object's proposal must overlap it at least this much (``process_scan2cap.py``).
PROPOSAL_IOU = 0.5

STRATEGIES = ("resize", "center_crop")

# Values (pairs x 196 pixels x 3 axes) box_cells tests at once: bounded memory (~64 MB in float32).
_BOX_CELLS_BUDGET = 1 << 24


def _fits(shape: tuple, spec: tuple) -> bool:
    if spec[:1] == (...,):
        return len(shape) >= len(spec) - 1 and _fits(shape[len(shape) - len(spec) + 1 :], spec[1:])
    return len(shape) == len(spec) and all(n == s or (isinstance(s, str) and n >= 1) for n, s in zip(shape, spec))


def _array(value, what: str, *shapes: tuple, dtype=None, finite: bool = True, meaning: str = "") -> torch.Tensor:
    """``value`` (a tensor, array or nested lists) as a tensor, checked: the one check of every array
    argument here. Its shape must fit one of ``shapes`` (an int matches that size, a letter any size
    >= 1, a leading ``...`` any leading dimensions) and, with ``finite``, its floats be finite (off
    for model activations: the check would wait for the GPU). ``dtype``: cast to it; ``"float"``:
    integers become float32; ``torch.bool``: must be bool; None: kept. ``meaning``: after the shapes."""
    t = value if isinstance(value, torch.Tensor) else None
    if t is None:
        try:
            t = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError, RuntimeError):
            pass
    if t is not None and dtype == "float" and not t.is_floating_point():
        t = t.float()
    elif t is not None and dtype not in (None, "float", torch.bool):
        t = t.to(dtype)
    if t is None:
        found = f"{type(value).__name__}, not an array of numbers"
    elif (dtype is torch.bool and t.dtype != torch.bool) or not any(_fits(tuple(t.shape), s) for s in shapes):
        found = f"{t.dtype} of shape {tuple(t.shape)}"
    elif finite and t.is_floating_point() and not bool(torch.isfinite(t).all()):
        found = f"values that are not finite (NaN or inf): {t.flatten()[:6].tolist()}..."
    else:
        return t
    want = " or ".join(
        "(" + ", ".join("..." if n is ... else str(n) for n in s) + ("," * (len(s) == 1)) + ")" for s in shapes
    )
    kind = "bool" if dtype is torch.bool else "finite" if finite else "numeric"
    raise Vega3DError(f"{what} must be a {kind} array of shape {want}{meaning}, got {found}")


# ---------------------------------------------------------------------------- nearest resize
def nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index of each of ``dst`` output positions under OpenCV ``INTER_NEAREST``.

    OpenCV's ``resizeNN`` computes ``min(floor(x * (1 / (dst / src))), src - 1)`` in double
    precision (``ifx = 1. / fx`` with ``fx = dst / src``); this reproduces it, including that
    double rounding, without OpenCV. Not ``INTER_NEAREST_EXACT`` (which samples pixel centres).
    """
    if src < 1 or dst < 1:
        raise Vega3DError(f"nearest resize: sizes must be >= 1, got {src} -> {dst}")
    ifx = 1.0 / (float(dst) / float(src))
    idx = np.floor(np.arange(dst, dtype=np.float64) * ifx).astype(np.int64)
    return np.minimum(idx, src - 1)


def map_pixels(
    height: int, width: int, size: int = IMAGE_SIZE, strategy: str = "resize"
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of an (height, width) image that the (size, size) map samples.

    ``resize``: nearest resize straight to size x size (VEGA-3D's default). ``center_crop``:
    nearest resize to ``int(width * (size / height))`` x size, then the centre size x size
    (columns ``(new_w - size) // 2`` onwards; for 640 x 480: 512 x 384, columns 64-447) — the
    original Video-3D LLM option (``VideoProcessor.preprocess``).
    """
    if strategy not in STRATEGIES or not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise Vega3DError(
            f"map_pixels: strategy must be one of {STRATEGIES} and size a positive int, got {strategy!r}, {size!r}"
        )
    if strategy == "resize":
        return nearest_indices(height, size), nearest_indices(width, size)
    new_h, new_w = int(size), int(width * (size / height))
    if new_w < size:
        raise Vega3DError(
            f"center_crop needs a landscape image (width >= height); got {width}x{height}, "
            f"which resizes to {new_w}x{new_h} < {size}"
        )
    left, top = (new_w - size) // 2, (new_h - size) // 2
    rows = nearest_indices(height, new_h)[top : top + size]
    cols = nearest_indices(width, new_w)[left : left + size]
    return rows, cols


# ---------------------------------------------------------------------------- world coordinates
def _frames_inputs(depth_m, K_depth, c2w, axis_align, what: str):
    """Checked float32 (N, H, W) depth, float64 (N, 3, 3) K and (N, 4, 4) aligned pose; whether it was one frame."""
    depth = _array(depth_m, f"{what}: depth_m", ("H", "W"), ("N", "H", "W"), dtype=torch.float32)
    single = depth.ndim == 2
    depth = depth[None] if single else depth
    n = depth.shape[0]
    if bool((depth < 0).any()):
        raise Vega3DError(f"{what}: depth_m must be >= 0 metres (0 = no reading)")
    k = _array(K_depth, f"{what}: K_depth", (3, 3), (n, 3, 3), dtype=torch.float64).to(depth.device).expand(n, 3, 3)
    if bool((k[:, 0, 0] <= 0).any()) or bool((k[:, 1, 1] <= 0).any()):
        raise Vega3DError(f"{what}: K_depth must have fx, fy > 0")
    lost = " (ScanNet writes -inf for lost tracking: such frames cannot be used)"
    poses = ((4, 4), (1, 4, 4)) if single else ((n, 4, 4),)
    pose = _array(c2w, f"{what}: c2w", *poses, dtype=torch.float64, meaning=lost).to(depth.device).reshape(n, 4, 4)
    if axis_align is not None:
        pose = _array(axis_align, f"{what}: axis_align", (4, 4), dtype=torch.float64).to(depth.device) @ pose
    return depth, k, pose, single


def _unproject(depth: torch.Tensor, k: torch.Tensor, pose: torch.Tensor, rows, cols) -> torch.Tensor:
    """World points (N, len(rows), len(cols), 3) float32 of the pixels rows x cols.

    Camera point z · ((u − cx) / fx, (v − cy) / fy, 1) at pixel centres (u, v) = (col + 0.5,
    row + 0.5); world = pose @ [point, 1], divided by its homogeneous coordinate (1 unless the
    pose's last row is not 0 0 0 1), as released. Rays and poses in float64, the per-pixel
    products in float32 (the release: float32 throughout).
    """
    n = depth.shape[0]
    rows_t = torch.as_tensor(rows, dtype=torch.long, device=depth.device)
    cols_t = torch.as_tensor(cols, dtype=torch.long, device=depth.device)
    z = depth[:, rows_t][:, :, cols_t].unsqueeze(-1)  # (N, h, w, 1)
    u = (cols_t.double() + 0.5).view(1, 1, -1)
    v = (rows_t.double() + 0.5).view(1, -1, 1)
    fx, fy = k[:, 0, 0].view(n, 1, 1), k[:, 1, 1].view(n, 1, 1)
    cx, cy = k[:, 0, 2].view(n, 1, 1), k[:, 1, 2].view(n, 1, 1)
    rx = ((u - cx) / fx).unsqueeze(-1).float()  # (N, 1, w, 1): the ray's x / z depends on the column only
    ry = ((v - cy) / fy).unsqueeze(-1).float()  # (N, h, 1, 1): its y / z on the row only
    pose = pose.float()
    rot = pose[:, :3, :3]
    # R @ (rx, ry, 1) = rx R[:, 0] + ry R[:, 1] + R[:, 2], built by broadcasting (no per-pixel matmul)
    dirs = rx * rot[:, None, None, :, 0] + ry * rot[:, None, None, :, 1] + rot[:, None, None, :, 2]
    world = z * dirs + pose[:, None, None, :3, 3]
    last = pose[:, 3]
    if not bool((last == torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=last.dtype, device=last.device)).all()):
        w = z[..., 0] * (
            rx[..., 0] * last[:, 0, None, None] + ry[..., 0] * last[:, 1, None, None] + last[:, 2, None, None]
        )
        world = world / (w + last[:, 3, None, None]).unsqueeze(-1)
    return world


def unproject_depth(depth_m, K_depth, c2w, axis_align=None) -> torch.Tensor:
    """World coordinates of every depth pixel at full resolution: float32 (H, W, 3) or (N, H, W, 3).

    Same conventions as :func:`world_coordinate_map` (depth 0 → camera centre), without resizing —
    what maximum-coverage sampling voxelises (``calculate_world_coords`` of the release).
    """
    depth, k, pose, single = _frames_inputs(depth_m, K_depth, c2w, axis_align, "unproject_depth")
    world = _unproject(depth, k, pose, np.arange(depth.shape[1]), np.arange(depth.shape[2]))
    return world[0] if single else world


def world_coordinate_map(
    depth_m,
    K_depth,
    c2w,
    axis_align=None,
    size: int = IMAGE_SIZE,
    *,
    strategy: str = "resize",
) -> torch.Tensor:
    """World coordinates of every pixel of a depth map, nearest-resized to (size, size, 3).

    - ``depth_m``: (H, W) or (N, H, W) z-depth in metres (0 = no reading; it is **not** masked:
      such pixels map to the camera centre, as released).
    - ``K_depth``: (3, 3) or (N, 3, 3) depth intrinsics in the library convention (pixel centres at
      +0.5, as :attr:`vega3d.scenes.Scene.intrinsics_depth`); pixel (v, u) is unprojected through
      (u + 0.5, v + 0.5). The released code unprojects integer (u, v) with the file's matrix, whose
      cx, cy are 0.5 smaller: the same rays.
    - ``c2w``: (4, 4) or (N, 4, 4) camera-to-world (unaligned ScanNet world); must be finite.
    - ``axis_align``: optional (4, 4) ScanNet axis alignment; world = axis_align @ c2w @ [x, y, z, 1].
    - ``size`` and ``strategy``: ``"resize"`` or ``"center_crop"`` (:func:`map_pixels`).

    Returns float32 (size, size, 3) or (N, size, size, 3) (rays and poses in float64, per-pixel
    products in float32; the release computes all in float32: differences below 1e-6 m). Only the
    sampled pixels are unprojected: nearest resizing picks whole pixels, so this equals
    unprojecting all and resizing after.
    """
    depth, k, pose, single = _frames_inputs(depth_m, K_depth, c2w, axis_align, "world_coordinate_map")
    rows, cols = map_pixels(depth.shape[1], depth.shape[2], size, strategy)
    world = _unproject(depth, k, pose, rows, cols)
    return world[0] if single else world


def _crop378(world, what: str) -> torch.Tensor:
    """The top-left 378 x 378 of a (…, H, W, 3) world map (a tensor or array; float, a float32 copy
    of an integer map)."""
    world = _array(world, f"{what}: world", (..., "H", "W", 3), dtype="float", finite=False)
    h, w = world.shape[-3], world.shape[-2]
    if h < CROP or w < CROP:
        raise Vega3DError(f"{what}: the world map must be at least {CROP}x{CROP} (SigLIP's grid), got {h}x{w}")
    return world[..., :CROP, :CROP, :]


def patch_world_coords(world) -> torch.Tensor:
    """(…, 14, 14, 3) mean world position of each token: the top-left 378 x 378 of the
    (…, H, W, 3) map in 27 x 27-pixel bins (``average_coordinate_in_patch``: ``[:-6, :-6]`` of a
    384 map, ``avg_pool2d(27, 27)``). Same dtype as ``world``."""
    crop = _crop378(world, "patch_world_coords")
    lead = crop.shape[:-3]
    bins = crop.reshape(*lead, TOKEN_GRID, TOKEN_BIN, TOKEN_GRID, TOKEN_BIN, 3)
    return bins.mean(dim=(-4, -2))


def discretize(xyz, voxel_size: float = VOXEL_SIZE, min_xyz=MIN_XYZ, max_xyz=MAX_XYZ) -> torch.Tensor:
    """Voxel indices (as integer-valued floats) of positions (…, 3): clamp to
    [min_xyz, max_xyz], subtract min_xyz, divide by ``voxel_size``, round half to even
    (``torch.round``; ``discrete_coords`` of the release). Default range: [0, 300]² x [0, 100]."""
    xyz = _array(xyz, "discretize: xyz", (..., 3), dtype="float", finite=False)
    lo = torch.as_tensor(min_xyz, dtype=xyz.dtype, device=xyz.device)
    hi = torch.as_tensor(max_xyz, dtype=xyz.dtype, device=xyz.device)
    grid = isinstance(voxel_size, (int, float)) and voxel_size > 0 and lo.shape == hi.shape == (3,)
    if not grid or bool((lo > hi).any()):
        raise Vega3DError(
            f"discretize: expected voxel_size > 0 and min_xyz, max_xyz of 3 numbers with min <= max, "
            f"got {voxel_size!r}, {min_xyz}, {max_xyz}"
        )
    xyz = torch.minimum(torch.maximum(xyz, lo), hi)
    return ((xyz - lo) / voxel_size).round()


def sin3d(positions, dim: int, temperature: float = SIN3D_TEMPERATURE) -> torch.Tensor:
    """The released ``PositionEmbeddingSine3D`` (n_points = 1): (…, 3) positions → (…, dim).

    Per axis ``num_feats = dim // 3`` channels; channel i of value p is sin(p / d_i) for even i and
    cos(p / d_i) for odd i with d_i = temperature^(2·⌊i/2⌋ / num_feats) (``dim_t`` in float32, as
    released); axes concatenated x | y | z; the last ``dim - 3·num_feats`` channels are 0. For odd
    ``num_feats`` the release pads one zero before interleaving and drops the last channel, which
    leaves exactly this rule. Positions go in as they are (voxel indices, no normalisation).
    Output dtype = positions' (float32 for integer input).
    """
    pos = _array(positions, "sin3d: positions", (..., 3), dtype="float", finite=False)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise Vega3DError(f"sin3d: dim must be a positive int, got {dim!r}")
    nf = int(dim) // 3
    out = torch.zeros(*pos.shape[:-1], int(dim), dtype=pos.dtype, device=pos.device)
    if nf == 0:
        return out
    dim_t = torch.arange(nf, dtype=torch.float32, device=pos.device)
    dim_t = temperature ** (2 * (dim_t // 2) / nf)
    p = pos[..., :, None] / dim_t  # (..., 3, nf)
    if nf % 2:
        p = torch.cat([p, torch.zeros_like(p[..., :1])], dim=-1)
    emb = torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), dim=-1).flatten(-2)[..., :nf]
    out[..., : 3 * nf] = emb.flatten(-2).to(pos.dtype)
    return out


# ---------------------------------------------------------------------------- objects
def _boxes(box, dtype, device, what: str) -> tuple[torch.Tensor, bool]:
    b = _array(box, f"{what}: box", (6,), ("P", 6), meaning=" ([cx, cy, cz, dx, dy, dz] each)")
    single = b.ndim == 1
    b = b.reshape(-1, 6).to(dtype=dtype, device=device)
    if bool((b[:, 3:] < 0).any()):
        raise Vega3DError(f"{what}: box sizes dx, dy, dz must be >= 0")
    return b, single


def cell_pixels(world) -> torch.Tensor:
    """The pixels of each SigLIP cell: (…, 729, 196, 3) from a (…, H, W, 3) map (top-left 378 x 378;
    cell index = 27 * row + column, pixel index = 14 * row + column inside the cell)."""
    crop = _crop378(world, "cell_pixels")
    lead = crop.shape[:-3]
    cells = crop.reshape(*lead, PATCH_GRID, PATCH_SIZE, PATCH_GRID, PATCH_SIZE, 3)
    n = len(lead)
    cells = cells.permute(*range(n), n, n + 2, n + 1, n + 3, n + 4)
    return cells.reshape(*lead, PATCH_GRID * PATCH_GRID, PATCH_SIZE * PATCH_SIZE, 3)


def box_cells(world, box, min_fraction: float = 0.5) -> torch.Tensor:
    """Which SigLIP cells lie in an axis-aligned box: (…, 27, 27) bool (``patch14`` of the release).

    ``world``: (…, H, W, 3) map (H, W >= 378, e.g. :func:`world_coordinate_map`'s 384), finite;
    its top-left 378 x 378 splits into 27 x 27 cells of 14 x 14 px — SigLIP's patches. A cell is in
    when at least ``int(196 * min_fraction)`` (98) of its pixels lie in the closed box
    [c - d/2, c + d/2] on all three axes (bounds computed in the map's dtype, as released).
    ``box``: (6,) → (…, 27, 27); (P, 6) → (P, …, 27, 27), all boxes in one call.

    Exact and fast: each cell's bounding box is computed once; the 196-pixel count runs only for
    the (box, cell) pairs whose bounds meet (a cell outside a box's bounds has no pixel in it).
    """
    pix = cell_pixels(_array(world, "box_cells: world", (..., "H", "W", 3), dtype="float"))
    lead = pix.shape[:-3]
    if not 0 <= min_fraction <= 1:
        raise Vega3DError(f"box_cells: min_fraction must be in [0, 1], got {min_fraction!r}")
    threshold = int(PATCH_SIZE * PATCH_SIZE * min_fraction)
    b, single = _boxes(box, pix.dtype, pix.device, "box_cells")
    lo = b[:, :3] - b[:, 3:] / 2
    hi = b[:, :3] + b[:, 3:] / 2
    pix = pix.reshape(-1, PATCH_GRID * PATCH_GRID, PATCH_SIZE * PATCH_SIZE, 3)  # (L, 729, 196, 3)
    cmin, cmax = pix.amin(dim=2), pix.amax(dim=2)  # (L, 729, 3)
    meet = ((cmin[None] <= hi[:, None, None]) & (cmax[None] >= lo[:, None, None])).all(dim=-1)  # (P, L, 729)
    pairs = meet.nonzero()  # (K, 3): box, frame, cell
    counts = torch.zeros(meet.shape, dtype=torch.int32, device=pix.device)
    step = max(1, _BOX_CELLS_BUDGET // (PATCH_SIZE * PATCH_SIZE * 3))
    for s in range(0, pairs.shape[0], step):
        k = pairs[s : s + step]
        pts = pix[k[:, 1], k[:, 2]]  # (k, 196, 3)
        inside = ((pts >= lo[k[:, 0], None]) & (pts <= hi[k[:, 0], None])).all(dim=-1).sum(dim=-1)
        counts[k[:, 0], k[:, 1], k[:, 2]] = inside.to(torch.int32)
    result = (counts >= threshold).reshape(b.shape[0], *lead, PATCH_GRID, PATCH_GRID)
    return result[0] if single else result


def object_features(
    pre_pool,
    cells,
    centres,
    *,
    voxel_size: float = VOXEL_SIZE,
    min_xyz=MIN_XYZ,
    max_xyz=MAX_XYZ,
) -> torch.Tensor:
    """Object features of P boxes in one pass (no Python loop per box): (P, D).

    - ``pre_pool``: (F, 27, 27, D) or (F, 729, D) projector outputs **before** the 2x pooling and
      before fusion (the release's ``encoded_image_features``);
    - ``cells``: (P, F, 27, 27) bool, :func:`box_cells` of each box in each frame;
    - ``centres``: (P, 3) box centres (aligned scene frame, metres).

    Feature p = mean of ``pre_pool`` over the selected cells of all frames (each cell counts once
    per frame), or the zero vector when no cell qualifies, plus
    ``sin3d(discretize(centre_p), D)``. All boxes at once: the selected rows are gathered and
    summed per box (``index_add``), or one masked matrix product when most cells are selected;
    differentiable in ``pre_pool``.
    Returned in ``pre_pool``'s dtype.
    """
    g = PATCH_GRID
    feats = _array(pre_pool, "object_features: pre_pool", ("F", g, g, "D"), ("F", g * g, "D"), finite=False)
    if feats.ndim == 3:
        feats = feats.view(feats.shape[0], g, g, feats.shape[2])
    f, d = feats.shape[0], feats.shape[3]
    mask = _array(cells, "object_features: cells", ("P", f, g, g), dtype=torch.bool)
    p = mask.shape[0]
    ctr = _array(centres, "object_features: centres", (p, 3), finite=False)
    flat = feats.reshape(f * PATCH_GRID * PATCH_GRID, d)
    sel = mask.reshape(p, -1).to(flat.device)
    counts = sel.sum(dim=1).clamp(min=1).to(flat.dtype)
    pairs = sel.nonzero()  # (K, 2): box, cell row of ``flat``
    if 4 * pairs.shape[0] < sel.numel():  # sparse selection: gather and add the K selected rows
        sums = flat.new_zeros(p, d).index_add(0, pairs[:, 0], flat[pairs[:, 1]])
    else:  # dense: one masked matrix product
        sums = sel.to(flat.dtype) @ flat
    mean = sums / counts[:, None]  # rows without cells stay exactly 0
    pe = sin3d(discretize(ctr.to(flat.device), voxel_size, min_xyz, max_xyz), d)
    return mean + pe.to(mean.dtype)


# ---------------------------------------------------------------------------- predictions
def _scores(scores, what: str) -> torch.Tensor:
    return _array(
        scores, f"{what}: scores", ("N",), dtype="float", meaning=" (1-D: N proposals + the zero-target slot last)"
    )


def select_single(scores) -> int:
    """ScanRefer prediction: the index of the highest-scoring proposal (scores (N + 1,), the
    zero-target slot last). When the zero target wins, the best real proposal (as
    ``model_scanrefer.py``: argmax, and on the zero-target index argmax over ``scores[:-1]``).
    Ties go to the lowest index (``torch.max`` on CPU)."""
    s = _scores(scores, "select_single")
    if s.numel() < 2:
        raise Vega3DError("select_single: no proposals (scores hold only the zero-target slot)")
    best = int(torch.argmax(s))
    return best if best != s.numel() - 1 else int(torch.argmax(s[:-1]))


def select_multi(scores, temperature: float = GROUND_TEMPERATURE, mass: float = MULTI_MASS) -> list[int]:
    """Multi3DRefer prediction: proposal indices (``eval_multi3drefer.py``).

    ``scores`` (N + 1,), zero-target slot last. Empty when the zero target has the highest score
    (ties go to the proposal: first maximum). Otherwise softmax(scores / temperature) over all
    N + 1, drop the zero target, take proposals by descending probability until the running sum
    reaches ``mass`` (the proposal that crosses it included; all when it is never reached).
    Computed in the scores' dtype (the release: float32); equal probabilities keep index order.
    """
    s = _scores(scores, "select_multi")
    if not temperature > 0:
        raise Vega3DError(f"select_multi: temperature must be > 0, got {temperature!r}")
    n = s.numel() - 1
    if int(torch.argmax(s)) == n:
        return []
    probs = torch.softmax(s / temperature, dim=0)[:-1]
    order = torch.sort(probs, descending=True, stable=True).indices
    running = torch.cumsum(probs[order], dim=0)
    reached = torch.nonzero(running >= mass)
    k = int(reached[0]) + 1 if reached.numel() else n
    return [int(i) for i in order[:k]]


def best_proposal(proposals, gt_box):
    """Scan2Cap's ``<coord>`` box: the proposal (a row of ``proposals``, boxes (K, 6) as a tensor or
    lists) of largest IoU >= :data:`PROPOSAL_IOU` with ``gt_box``, the first of equal ones (a strictly
    larger IoU replaces, as ``process_scan2cap.py``); None when none overlaps enough."""
    from vega3d.eval.boxes import box3d_iou

    best, best_iou = None, 0.0
    for p in proposals:
        iou = box3d_iou(p.tolist() if isinstance(p, torch.Tensor) else p, list(gt_box))
        if iou >= PROPOSAL_IOU and iou > best_iou:
            best, best_iou = p, iou
    return best
