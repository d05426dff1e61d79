"""The rigorous correspondence score: reprojected positives, far-in-3D negatives, AUROC.

For every pair of frames ``i < j`` with valid poses (not only adjacent ones):

1. ``points_per_frame`` pixels with valid depth are sampled in frame i (one seeded
   ``torch.Generator``), lifted to world points with the depth and pose, and reprojected
   into frame j. A point is *visible* in j when it lies in front of the camera, inside
   the colour frame, and frame j's depth at its reprojection agrees with its depth in j
   (``|d_j - z_j| <= abs_tol + rel_tol * z_j``): the occlusion test.
2. The pair is kept when the visible fraction (overlap) is in ``[min_overlap,
   max_overlap]`` and the baseline is large enough (relative rotation, camera
   translation, median image motion of the visible points).
3. Both grids are read bilinearly at the two pixel positions: the *positive* cosine.
   *Negatives* pair the frame-i feature with frame-j features of points more than
   ``negative_distance_m`` away in 3D: random samples of frame j (global negatives), and
   *local* negatives placed near the true reprojection in the image (``local_negative_px``
   from it) on the circle around the point's position in frame i through the true
   reprojection, so the negative is exactly as far from where the point was as the true
   match is. A feature that only knows the image position cannot tell them apart: the
   position-controlled AUROC.
4. Nearest-neighbour recall: the best-matching cell of frame j on a search grid of
   ``recall_stride_px`` pixels is within r pixels of the true reprojection, over points
   whose reprojection moved at least one search cell, next to the "same location"
   guess (the search cell where the point was in frame i).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vega3d.errors import Vega3DError
from vega3d.grids import resample_grid
from vega3d.probe.geometry import (
    apply_homography,
    invert_poses,
    lookup_depth,
    pixel_grid,
    project,
    rotation_angle_deg,
    transform,
    unproject,
)
from vega3d.probe.sampling import auroc, bilinear_cosine, bilinear_sample, normalize


def sample_points(scene, poses, frames, num, generator):
    """Sample up to ``num`` valid-depth pixels in each frame of ``frames``.

    Returns ``world`` (N, num, 3) float64 metres, ``xy`` (N, num, 2) colour pixels and
    ``valid`` (N, num) bool; frames not in ``frames`` have no valid samples.
    """
    n = len(scene)
    height, width = scene.image_size
    hd, wd = scene.depth_size
    xy_d = pixel_grid(hd, wd)
    kc, kd = scene.intrinsics_color.double(), scene.intrinsics_depth.double()
    xy_c = apply_homography(kc @ torch.linalg.inv(kd), xy_d)
    inside = (xy_c[:, 0] >= 0) & (xy_c[:, 0] < width) & (xy_c[:, 1] >= 0) & (xy_c[:, 1] < height)
    rays = unproject(xy_d, torch.ones(len(xy_d), dtype=torch.float64), kd)
    world = torch.zeros(n, num, 3, dtype=torch.float64)
    xy = torch.zeros(n, num, 2, dtype=torch.float64)
    valid = torch.zeros(n, num, dtype=torch.bool)
    for f in frames:
        d = scene.depth[f].reshape(-1).double()
        r = torch.rand(len(d), generator=generator, dtype=torch.float64)
        r[~(inside & (d > 0))] = -1.0
        top = torch.topk(r, min(num, len(r))).indices
        idx = top[r[top] >= 0]
        m = len(idx)
        world[f, :m] = transform(poses[f].double(), rays[idx] * d[idx].unsqueeze(-1))
        xy[f, :m] = xy_c[idx]
        valid[f, :m] = True
    return world, xy, valid


def visibility(scene, w2c, a, b, world, valid, opts):
    """Reproject frame ``a``'s samples into frame ``b`` (pairs (M,)) and test visibility.

    Returns ``xy_b`` (M, S, 2) colour pixels, ``visible`` (M, S) and ``checkable`` (M, S)
    (in front, inside the frame, valid depth at the reprojection — before the depth test).
    """
    height, width = scene.image_size
    cam = transform(w2c[b], world[a])
    xy_b, z = project(cam, scene.intrinsics_color.double())
    xy_bd, _ = project(cam, scene.intrinsics_depth.double())
    inside = (
        torch.isfinite(xy_b).all(-1)
        & (xy_b[..., 0] >= 0)
        & (xy_b[..., 0] < width)
        & (xy_b[..., 1] >= 0)
        & (xy_b[..., 1] < height)
    )
    m, s = z.shape
    d_b = lookup_depth(scene.depth, b.repeat_interleave(s), xy_bd.reshape(-1, 2)).reshape(m, s)
    checkable = valid[a] & (z > 1e-6) & inside & (d_b > 0)
    visible = checkable & ((d_b - z).abs() <= opts.depth_abs_tolerance + opts.depth_rel_tolerance * z)
    return xy_b, visible, checkable


def adjacent_consistency(scene, poses, frames, opts):
    """Mean overlap and depth-consistency of adjacent frame pairs under ``poses``.

    ``consistency`` is the fraction of reprojected points (in front, inside, valid depth)
    whose depth agrees — near 1 for correct poses on a clean scan, low for a wrong
    pose convention. Returns ``(overlap, consistency)`` floats (NaN when unmeasurable).
    """
    if len(frames) < 2:
        return float("nan"), float("nan")
    g = torch.Generator().manual_seed(opts.seed)
    world, _, valid = sample_points(scene, poses, frames, opts.points_per_frame, g)
    w2c = torch.zeros(len(scene), 4, 4, dtype=torch.float64)
    w2c[frames] = invert_poses(poses[frames])
    a = torch.tensor(frames[:-1])
    b = torch.tensor(frames[1:])
    _, vis, chk = visibility(scene, w2c, a, b, world, valid, opts)
    overlap = float((vis.sum(1) / valid[a].sum(1).clamp_min(1)).mean())
    consistency = float(vis.sum() / chk.sum()) if bool(chk.any()) else float("nan")
    return overlap, consistency


def pose_alternatives(poses: torch.Tensor) -> dict:
    """Common pose-convention mistakes, as the matrices a loader that made them would hold."""
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
    transposed = poses.clone()
    transposed[:, :3, :3] = poses[:, :3, :3].transpose(-1, -2)
    return {
        "inverted (world-to-camera)": torch.linalg.inv(poses),
        "rotation transposed": transposed,
        "OpenGL camera axes (y up, z backward)": poses @ flip,
    }


def _bins(values: torch.Tensor, edges) -> tuple[torch.Tensor, list[str]]:
    e = torch.tensor(list(edges), dtype=values.dtype)
    idx = torch.bucketize(values, e, right=True) - 1
    labels = [f"{edges[k]:g}-{edges[k + 1]:g}" for k in range(len(edges) - 1)] + [f"{edges[-1]:g}+"]
    return idx.clamp(min=0), labels


def _mean(x: torch.Tensor) -> float:
    return float(x.double().mean()) if x.numel() else float("nan")


@dataclass
class _Pairs:
    """Every candidate pair (a[k], b[k]) of valid-pose frames and its geometry (all (M, ...))."""

    a: torch.Tensor  # scene positions of frame i
    b: torch.Tensor  # scene positions of frame j
    xy_b: torch.Tensor  # (M, S, 2) frame i's samples reprojected into frame j
    visible: torch.Tensor  # (M, S) passed the occlusion test
    overlap: torch.Tensor
    motion: torch.Tensor  # (M, S) image motion of each sample
    median_motion: torch.Tensor  # of the visible samples
    rotation: torch.Tensor  # degrees
    translation: torch.Tensor  # metres


@dataclass
class _Points:
    """The visible points of the selected pairs, grouped by pair (all (P, ...))."""

    pair_id: torch.Tensor  # index into the selected pairs
    sample: torch.Tensor  # index of the point among frame a's samples
    a: torch.Tensor
    b: torch.Tensor
    xy_a: torch.Tensor
    xy_b: torch.Tensor
    world: torch.Tensor
    motion: torch.Tensor
    rotation: torch.Tensor


@dataclass
class _Cosines:
    """Positive cosines (P,) and the negatives with the point each belongs to."""

    pos: torch.Tensor
    neg: torch.Tensor
    neg_owner: torch.Tensor
    loc: torch.Tensor  # local (position-controlled) negatives
    loc_owner: torch.Tensor


def rigorous_score(scene, features: torch.Tensor, frames: list[int], opts, progress=None, samples=None) -> dict:
    """The rigorous score (module docstring) for the valid-pose scene positions ``frames``.

    ``features`` (N, h, w, C) float32 for all scene frames. Returns a dict of metrics
    (keys as :class:`ProbeResult` fields). Raises :class:`Vega3DError` when no pair
    passes the selection, saying which thresholds failed and which options to relax.
    ``samples``: a dict to receive the per-point cosines behind the numbers, each with the
    index of its selected pair (vega3d.probe.bootstrap resamples pairs from them).
    """
    g = torch.Generator().manual_seed(opts.seed)
    poses = scene.poses.double()
    world, xy, valid = sample_points(scene, poses, frames, opts.points_per_frame, g)
    pairs = candidate_pairs(scene, poses, frames, world, xy, valid, opts)
    sel, rejected = select_pairs(scene, frames, pairs, opts, g)
    points = _visible_points(pairs, sel, xy, world)
    feats = features.float()
    fsrc = _sample_features(feats, frames, xy, scene.image_size, opts.points_per_frame)
    cos = _cosines(scene, feats, fsrc, points, world, valid, opts, g, progress)
    has_local = torch.zeros(len(cos.pos), dtype=torch.bool)
    has_local[cos.loc_owner] = True
    every = _metrics(cos, torch.ones(len(cos.pos), dtype=torch.bool), has_local, opts)
    if samples is not None:
        samples.update(num_pairs=len(sel), pair_id=points.pair_id, pos=cos.pos, neg=cos.neg, neg_owner=cos.neg_owner,
                       loc=cos.loc, loc_owner=cos.loc_owner, has_local=has_local)  # fmt: skip
    return {
        "pos_cosine": every["pos_cosine"],
        "neg_cosine": every["neg_cosine"],
        "margin": every["pos_cosine"] - every["neg_cosine"],
        "auroc": every["auroc"],
        "auroc_local": every["auroc_local"],
        "neg_cosine_local": _mean(cos.loc),
        "margin_local": _mean(cos.pos[has_local]) - _mean(cos.loc),
        "num_pairs": len(sel),
        "num_points": len(cos.pos),
        "num_negatives": len(cos.neg),
        "num_points_local": int(has_local.sum()),
        "num_negatives_local": len(cos.loc),
        "pairs_considered": len(pairs.a),
        "pairs_rejected": rejected,
        "by_rotation": _breakdown(cos, has_local, points.rotation, opts.rotation_bins_deg, "rotation_deg", opts),
        "by_motion": _breakdown(cos, has_local, points.motion, opts.motion_bins_px, "motion_px", opts),
        "pairs": _pair_summaries(scene, pairs, sel, points.pair_id, cos.pos),
        **_nn_recall(feats, fsrc, points, scene.image_size, opts, samples),
    }


def candidate_pairs(scene, poses, frames, world, xy, valid, opts) -> _Pairs:
    """All pairs i < j of ``frames`` with frame i's samples reprojected into frame j."""
    w2c = torch.zeros(len(scene), 4, 4, dtype=torch.float64)
    w2c[frames] = invert_poses(poses[frames])
    fr = torch.tensor(frames)
    ia, ib = torch.triu_indices(len(frames), len(frames), offset=1)
    a, b = fr[ia], fr[ib]
    xy_b, vis, _ = visibility(scene, w2c, a, b, world, valid, opts)
    motion = (xy_b - xy[a]).norm(dim=-1)
    return _Pairs(
        a=a,
        b=b,
        xy_b=xy_b,
        visible=vis,
        overlap=vis.sum(1) / valid[a].sum(1).clamp_min(1),
        motion=motion,
        median_motion=torch.where(vis, motion, torch.full_like(motion, float("nan"))).nanmedian(dim=1).values,
        rotation=rotation_angle_deg(poses[a, :3, :3], poses[b, :3, :3]),
        translation=(poses[a, :3, 3] - poses[b, :3, 3]).norm(dim=-1),
    )


def select_pairs(scene, frames, pairs: _Pairs, opts, generator) -> tuple[torch.Tensor, dict]:
    """Indices of the pairs that pass the overlap and baseline thresholds (a random
    ``max_pairs`` of them if more), and the count rejected by each threshold."""
    checks = {
        "overlap below min_overlap": pairs.overlap < opts.min_overlap,
        "overlap above max_overlap": pairs.overlap > opts.max_overlap,
        "rotation below min_rotation_deg": pairs.rotation < opts.min_rotation_deg,
        "translation below min_translation_m": pairs.translation < opts.min_translation_m,
        "median motion below min_motion_px": ~(pairs.median_motion >= opts.min_motion_px),
    }
    keep = torch.ones(len(pairs.a), dtype=torch.bool)
    for m in checks.values():
        keep &= ~m
    rejected = {k: int(v.sum()) for k, v in checks.items()}
    if not bool(keep.any()):
        raise _no_pairs_error(scene, frames, opts, pairs, rejected)
    sel = keep.nonzero().flatten()
    if opts.max_pairs is not None and len(sel) > opts.max_pairs:
        sel = sel[torch.randperm(len(sel), generator=generator)[: opts.max_pairs].sort().values]
    return sel, rejected


def _visible_points(pairs: _Pairs, sel, xy, world) -> _Points:
    pair_id, samp = pairs.visible[sel].nonzero(as_tuple=True)
    pa = pairs.a[sel][pair_id]
    return _Points(
        pair_id=pair_id,
        sample=samp,
        a=pa,
        b=pairs.b[sel][pair_id],
        xy_a=xy[pa, samp],
        xy_b=pairs.xy_b[sel][pair_id, samp],
        world=world[pa, samp],
        motion=pairs.motion[sel][pair_id, samp],
        rotation=pairs.rotation[sel][pair_id],
    )


def _sample_features(feats, frames, xy, image_size, num) -> torch.Tensor:
    """Unit features (N, num, C) of every frame's samples (zero for frames not in ``frames``)."""
    fsrc = torch.zeros(len(feats), num, feats.shape[-1])
    for f in frames:
        fsrc[f] = normalize(bilinear_sample(feats, torch.full((num,), f), xy[f], image_size))
    return fsrc


def _cosines(scene, feats, fsrc, pts: _Points, world, valid, opts, generator, progress) -> _Cosines:
    """Positive, global-negative and local-negative cosines, ``chunk_points`` points at a time."""
    num = len(pts.sample)
    pos = torch.empty(num)
    neg, neg_owner, loc, loc_owner = [], [], [], []
    chunks = range(0, num, opts.chunk_points)
    for start in progress(chunks) if progress else chunks:
        sl = slice(start, min(start + opts.chunk_points, num))
        q = fsrc[pts.a[sl], pts.sample[sl]]  # (m, C)
        pos[sl] = bilinear_cosine(feats, pts.b[sl], pts.xy_b[sl], scene.image_size, q)
        owner = torch.arange(sl.start, sl.stop).unsqueeze(1).expand(len(q), opts.negatives_per_point).reshape(-1)
        cos, keep = _global_negatives(fsrc, pts, sl, q, world, valid, opts, generator)
        neg.append(cos)
        neg_owner.append(owner[keep])
        cos, keep = _local_negatives(scene, feats, pts, sl, q, opts, generator)
        loc.append(cos)
        loc_owner.append(owner[keep])
    return _Cosines(pos, torch.cat(neg), torch.cat(neg_owner), torch.cat(loc), torch.cat(loc_owner))


def _global_negatives(fsrc, pts: _Points, sl, q, world, valid, opts, generator):
    """Other samples of frame j further than ``negative_distance_m`` in 3D: cosines and the
    kept candidates' flat indices into the chunk's (m * k) draws."""
    m, k = len(q), opts.negatives_per_point
    cand = torch.randint(0, opts.points_per_frame, (m, k), generator=generator)
    bj = pts.b[sl].unsqueeze(1).expand(m, k)
    ok = valid[bj, cand] & ((world[bj, cand] - pts.world[sl].unsqueeze(1)).norm(dim=-1) > opts.negative_distance_m)
    keep = ok.reshape(-1).nonzero().flatten()
    other = fsrc.reshape(-1, fsrc.shape[-1])[(bj.reshape(-1) * opts.points_per_frame + cand.reshape(-1))[keep]]
    return (q[keep // k] * other).sum(-1), keep


def _local_negatives(scene, feats, pts: _Points, sl, q, opts, generator):
    """Candidates on the circle around x_i through x_j, ``local_negative_px`` from x_j, on
    valid depth, inside the frame and far in 3D: cosines and the kept candidates' indices."""
    height, width = scene.image_size
    m, k = len(q), opts.negatives_per_point
    lo, hi = opts.local_negative_px
    vec = (pts.xy_b[sl] - pts.xy_a[sl]).unsqueeze(1).expand(m, k, 2)
    rad = vec.norm(dim=-1)
    cmax = torch.minimum(torch.full_like(rad, hi), 2 * rad)
    chord = lo + torch.rand(m, k, generator=generator, dtype=torch.float64) * (cmax - lo).clamp_min(0)
    theta = 2 * torch.asin((chord / (2 * rad).clamp_min(1e-9)).clamp(0, 1))
    theta = theta * torch.where(torch.rand(m, k, generator=generator) < 0.5, -1.0, 1.0).double()
    cs, sn = torch.cos(theta), torch.sin(theta)
    rot = torch.stack([cs * vec[..., 0] - sn * vec[..., 1], sn * vec[..., 0] + cs * vec[..., 1]], dim=-1)
    xn = (pts.xy_a[sl].unsqueeze(1) + rot).reshape(-1, 2)
    inside = (xn[:, 0] >= 0) & (xn[:, 0] < width) & (xn[:, 1] >= 0) & (xn[:, 1] < height)
    bflat = pts.b[sl].unsqueeze(1).expand(m, k).reshape(-1)
    kc = scene.intrinsics_color.double()
    hom_c2d = scene.intrinsics_depth.double() @ torch.linalg.inv(kc)
    dn = lookup_depth(scene.depth, bflat, apply_homography(hom_c2d, xn))
    wn = transform(scene.poses.double()[bflat], unproject(xn, dn, kc).unsqueeze(1)).squeeze(1)
    far_m = opts.local_negative_distance_m or opts.negative_distance_m
    far = (wn - pts.world[sl].unsqueeze(1).expand(m, k, 3).reshape(-1, 3)).norm(dim=-1) > far_m
    keep = ((cmax >= lo).reshape(-1) & inside & (dn > 0) & far).nonzero().flatten()
    # read the grid only where the candidate is a valid negative
    return bilinear_cosine(feats, bflat[keep], xn[keep], scene.image_size, q[keep // k]), keep


def _metrics(cos: _Cosines, mask, has_local, opts) -> dict:
    """Point count, mean cosines and both AUROCs over the points in ``mask``."""
    nm, lm = mask[cos.neg_owner], mask[cos.loc_owner]
    pl = mask & has_local
    return {
        "num_points": int(mask.sum()),
        "pos_cosine": _mean(cos.pos[mask]),
        "neg_cosine": _mean(cos.neg[nm]),
        "auroc": auroc(cos.pos[mask], cos.neg[nm], opts.tie_tolerance),
        "auroc_local": auroc(cos.pos[pl], cos.loc[lm], opts.tie_tolerance),
    }


def _breakdown(cos: _Cosines, has_local, values, edges, key, opts) -> list[dict]:
    """:func:`_metrics` per bin of ``values`` (non-empty bins only)."""
    idx, labels = _bins(values, edges)
    return [
        {key: label, **_metrics(cos, idx == kbin, has_local, opts)}
        for kbin, label in enumerate(labels)
        if bool((idx == kbin).any())
    ]


def _pair_summaries(scene, pairs: _Pairs, sel, pair_id, pos) -> list[dict]:
    cnt = torch.bincount(pair_id, minlength=len(sel)).double()
    pos_sum = torch.zeros(len(sel), dtype=torch.float64).index_add_(0, pair_id, pos.double())
    out = []
    for r, p in enumerate(sel.tolist()):
        a, b = int(pairs.a[p]), int(pairs.b[p])
        out.append(
            {
                "frames": [scene.frame_ids[a], scene.frame_ids[b]],
                "positions": [a, b],
                "overlap": float(pairs.overlap[p]),
                "rotation_deg": float(pairs.rotation[p]),
                "translation_m": float(pairs.translation[p]),
                "median_motion_px": float(pairs.median_motion[p]),
                "num_points": int(cnt[r]),
                "pos_cosine": float(pos_sum[r] / cnt[r]) if cnt[r] else float("nan"),
            }
        )
    return out


def _nn_recall(feats, fsrc, pts: _Points, image_size, opts, samples=None) -> dict:
    """Nearest-neighbour recall on the ``recall_stride_px`` search grid, next to the
    same-location guess, over the first ``recall_points_per_pair`` moved points of each pair
    (``samples``: receives each searched point's pair and pixel errors)."""
    height, width = image_size
    hs, ws = max(1, round(height / opts.recall_stride_px)), max(1, round(width / opts.recall_stride_px))
    cw, ch = width / ws, height / hs
    radii = [float(r) for r in opts.recall_radii_px]
    chosen = _first_moved(pts.pair_id, pts.motion >= max(cw, ch), opts.recall_points_per_pair)
    out = {"search_grid": (hs, ws), "nn_recall_num_points": len(chosen)}
    if len(chosen) == 0:
        out["nn_recall"] = {f"{r:g}": float("nan") for r in radii}
        out["nn_recall_same_location"] = {f"{r:g}": float("nan") for r in radii}
        return out
    grid = normalize(resample_grid(feats, (hs, ws))).reshape(len(feats), hs * ws, -1)
    best = torch.empty(len(chosen), dtype=torch.long)
    for j in pts.b[chosen].unique().tolist():
        sub = (pts.b[chosen] == j).nonzero().flatten()
        q = fsrc[pts.a[chosen[sub]], pts.sample[chosen[sub]]]
        best[sub] = (q @ grid[j].T).argmax(dim=1)
    centre = torch.stack([(best % ws + 0.5) * cw, (best // ws + 0.5) * ch], dim=-1).double()
    xs = pts.xy_a[chosen]
    same = torch.stack(
        [
            (torch.floor(xs[:, 0] / cw).clamp(0, ws - 1) + 0.5) * cw,
            (torch.floor(xs[:, 1] / ch).clamp(0, hs - 1) + 0.5) * ch,
        ],
        dim=-1,
    )
    err = (centre - pts.xy_b[chosen]).norm(dim=-1)
    err_same = (same - pts.xy_b[chosen]).norm(dim=-1)
    if samples is not None:
        samples.update(recall_pair_id=pts.pair_id[chosen], recall_err=err, recall_err_same=err_same)
    out["nn_recall"] = {f"{r:g}": float((err <= r).double().mean()) for r in radii}
    out["nn_recall_same_location"] = {f"{r:g}": float((err_same <= r).double().mean()) for r in radii}
    return out


def _first_moved(pair_id, moved, count) -> torch.Tensor:
    """Indices of the first ``count`` moved points of each pair (samples are in random order)."""
    csum = torch.cumsum(moved.long(), 0)
    start = torch.zeros(int(pair_id.max()) + 1 if len(pair_id) else 0, dtype=torch.long)
    first = torch.ones_like(pair_id, dtype=torch.bool)
    first[1:] = pair_id[1:] != pair_id[:-1]
    start[pair_id[first]] = (csum - moved.long())[first]
    rank = csum - start[pair_id]
    return (moved & (rank <= count)).nonzero().flatten()


def _no_pairs_error(scene, frames, opts, pairs: _Pairs, rejected) -> Vega3DError:
    def mx(t):
        t = t[torch.isfinite(t)]
        return f"{float(t.max()):.3g}" if t.numel() else "n/a"

    msg = (
        f"probe: no frame pair of scene {scene.name!r} passes the pair selection "
        f"({len(frames)} frames with valid poses, {len(pairs.a)} pairs considered; rejections: "
        + ", ".join(f"{k}: {v}" for k, v in rejected.items() if v)
        + f"). Largest overlap {mx(pairs.overlap)} (min_overlap={opts.min_overlap}), largest rotation "
        f"{mx(pairs.rotation)} deg (min_rotation_deg={opts.min_rotation_deg}), largest translation "
        f"{mx(pairs.translation)} m (min_translation_m={opts.min_translation_m}), largest median motion "
        f"{mx(pairs.median_motion)} px (min_motion_px={opts.min_motion_px}). Relax those options, "
        f"use more or more widely spaced frames, or check depth_abs_tolerance/depth_rel_tolerance."
    )
    return Vega3DError(msg + _pose_hint(scene, frames, opts))


def _pose_hint(scene, frames, opts) -> str:
    """When adjacent frames barely overlap: whether a common pose-convention mistake explains it."""
    if len(frames) < 2:
        return ""
    poses = scene.poses.double()
    given_overlap, given_cons = adjacent_consistency(scene, poses, frames, opts)
    hints = []
    for label, alt in pose_alternatives(poses[frames]).items():
        full = poses.clone()
        full[frames] = alt
        ov, _ = adjacent_consistency(scene, full, frames, opts)
        if ov > max(2 * given_overlap, opts.min_overlap) and ov > 0.05:
            hints.append(f"{label}: adjacent overlap {ov:.2f}")
    msg = (
        f" Adjacent frames overlap {given_overlap:.2f} on average with the poses as given "
        f"(depth consistency {given_cons:.2f})."
    )
    if hints:
        msg += (
            " The pose convention looks wrong; re-reading the poses as "
            + "; ".join(hints)
            + ". Poses must be camera-to-world in OpenCV axes (x right, y down, z forward), metres."
        )
    return msg
