"""``vega3d.probe.score``: validate inputs, run the paper-compatible and rigorous scores."""

from __future__ import annotations

import torch

from vega3d.errors import Vega3DError
from vega3d.probe.paper import paper_score
from vega3d.probe.result import ProbeOptions, ProbeResult
from vega3d.probe.rigorous import adjacent_consistency, pose_alternatives, rigorous_score
from vega3d.progress import progress as show_progress

# Below this fraction of depth-consistent reprojections between adjacent frames the
# poses are suspect (clean scans give 0.8-1.0; noisy real depth somewhat less).
LOW_CONSISTENCY = 0.5


def pose_warning(scene, frames, opts, consistency: float) -> str:
    """A warning naming any common pose-convention mistake that would fit the depth better."""
    msg = (
        f"only {consistency:.2f} of reprojected points between adjacent frames agree with the depth "
        f"(expected > {LOW_CONSISTENCY}); the poses or depth may be wrong"
    )
    poses = scene.poses.double()
    for label, alt in pose_alternatives(poses[frames]).items():
        full = poses.clone()
        full[frames] = alt
        _, cons = adjacent_consistency(scene, full, frames, opts)
        if cons == cons and cons > max(LOW_CONSISTENCY, consistency + 0.2):
            msg += f"; read as {label} they agree {cons:.2f}"
    return msg


def check_features(scene, features) -> torch.Tensor:
    """Validate a feature-grid tensor against a scene (type, rank, dtype, one grid per frame,
    finiteness: one check, one message); return it as float32 (N, h, w, C)."""
    shape = tuple(getattr(features, "shape", ()))
    tensor = isinstance(features, torch.Tensor) and features.ndim == 4 and features.is_floating_point()
    feats = features.detach().to("cpu", torch.float32) if tensor and min(shape) >= 1 else None
    bad = [] if feats is None else (~torch.isfinite(feats).flatten(1).all(dim=1)).nonzero().flatten().tolist()
    if feats is None or shape[0] != len(scene) or bad:
        if feats is None:
            got = (
                f"a {features.dtype} tensor of shape {shape}"
                if isinstance(features, torch.Tensor)
                else type(features).__name__
            )
        elif shape[0] != len(scene):
            got = f"{shape[0]} feature grids for {len(scene)} frames"
        else:
            got = f"feature grids of frames at positions {bad[:8]} that contain NaN or inf"
        raise Vega3DError(
            f"probe: features must be a floating point torch.Tensor of rank 4 (N, h, w, C), channel-last, "
            f"non-empty, finite, one grid per frame of scene {scene.name!r}; got {got}"
        )
    return feats


def scored_frames(scene) -> tuple[list[int], list[int]]:
    """Scene positions of the frames with a valid pose (at least 2, invertible: a Scene built by hand
    is checked here) and the frame ids of the excluded ones."""
    valid = scene.pose_valid
    frames = valid.nonzero().flatten().tolist()
    excluded = [scene.frame_ids[i] for i in (~valid).nonzero().flatten().tolist()]
    det = torch.linalg.det(scene.poses[frames].to(torch.float64)[:, :3, :3])
    singular = (det.abs() < 1e-6).nonzero().flatten().tolist()
    if len(frames) < 2 or singular:
        got = (
            f"{len(frames)} frame(s) with a valid pose ({len(excluded)} excluded for invalid poses)"
            if len(frames) < 2
            else f"poses at positions {[frames[i] for i in singular][:8]} that are not invertible "
            f"(rotation determinant {det[singular[0]].item():.3g})"
        )
        raise Vega3DError(
            f"probe: scene {scene.name!r} has {got}; expected at least 2 frames with valid, rigid camera-to-world "
            f"poses (det +1)"
        )
    return frames, excluded


def score(scene, features: torch.Tensor, progress: bool = False, samples: dict | None = None, **options) -> ProbeResult:
    """Multi-view correspondence scores of ``features`` on ``scene``.

    ``scene``: a :class:`vega3d.scenes.Scene`. ``features``: (N, h, w, C) float tensor, one
    grid per scene frame, each covering the full colour frame (vega3d.grids). Frames whose
    pose is invalid are excluded (listed in ``excluded_frames``), never used. ``options``:
    fields of :class:`ProbeOptions`. ``progress`` shows a progress bar over point chunks.
    ``samples``: a dict that receives the per-pair ingredients of the numbers (the paper score
    of each adjacent pair, the rigorous cosines by pair; vega3d.probe.bootstrap). Raises :class:`Vega3DError` for bad inputs or when no frame pair can be scored.
    """
    opts = ProbeOptions.from_kwargs(**options)
    feats = check_features(scene, features)
    frames, excluded = scored_frames(scene)
    bar = None
    if progress:

        def bar(chunks):
            return show_progress(chunks, desc="probe: scoring", unit="chunk", leave=False)

    paper = paper_score(scene, feats, frames, opts.paper_voxel_size, opts.paper_min_valid_fraction)
    rig = rigorous_score(scene, feats, frames, opts, progress=bar, samples=samples)
    if samples is not None:
        samples["paper_pairs"] = torch.tensor([p["score"] for p in paper["per_pair"] if p["score"] is not None])
    _, consistency = adjacent_consistency(scene, scene.poses.double(), frames, opts)
    warnings = [pose_warning(scene, frames, opts, consistency)] if consistency < LOW_CONSISTENCY else []
    return ProbeResult(
        paper_score=paper["score"],
        paper_num_pairs=paper["num_pairs"],
        paper_voxels_per_pair=paper["voxels_per_pair"],
        pose_consistency=consistency,
        num_frames=len(scene),
        num_frames_used=len(frames),
        excluded_frames=excluded,
        grid_size=tuple(feats.shape[1:3]),
        image_size=scene.image_size,
        depth_size=scene.depth_size,
        options=opts.to_dict(),
        warnings=warnings,
        notes=explain(scene, excluded, paper, rig, opts),
        **rig,
    )


def explain(scene, excluded, paper, rig, opts) -> list[str]:
    """Notes saying what was left out and why a headline number is not measurable (NaN)."""
    notes = []
    if excluded:
        notes.append(
            f"{len(excluded)} of {len(scene)} frames excluded for an invalid (non-finite) pose, frame ids "
            f"{excluded}; their depth and features are never read"
        )
    if paper["reason"]:
        notes.append(f"paper score n/a: {paper['reason']}")
    if rig["num_points_local"] == 0:
        notes.append(
            f"position-controlled AUROC n/a: no point has a local negative (moved >= "
            f"{opts.local_negative_px[0] / 2:g} px, candidate inside the frame on valid depth and > "
            f"{opts.local_negative_distance_m or opts.negative_distance_m:g} m away in 3D); "
            f"see local_negative_px / local_negative_distance_m"
        )
    if rig["num_negatives"] == 0:
        notes.append(
            f"random-negative AUROC n/a: no sampled point of the other frame is > "
            f"{opts.negative_distance_m:g} m from the positives in 3D (negative_distance_m)"
        )
    if rig["nn_recall_num_points"] == 0:
        notes.append(
            f"NN recall n/a: no point moved at least one {opts.recall_stride_px:g} px search cell (recall_stride_px)"
        )
    return notes
