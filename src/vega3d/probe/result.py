"""Probe options and results: frozen/plain dataclasses that serialise to JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

from vega3d.errors import Vega3DError


@dataclass(frozen=True)
class ProbeOptions:
    """Every choice the probe makes (docs/probe.md explains each). Distances in metres,
    image quantities in pixels of the scene's colour frames, angles in degrees."""

    seed: int = 0  # seeds the one torch.Generator used for all sampling
    # paper-compatible score
    paper_voxel_size: float = 0.1
    paper_min_valid_fraction: float = 0.1  # cells with less valid depth are dropped
    # point sampling and visibility
    points_per_frame: int = 256  # valid-depth pixels sampled in each frame
    depth_abs_tolerance: float = 0.05  # |depth_j - z_j| <= abs + rel * z_j  -> visible
    depth_rel_tolerance: float = 0.03
    # pair selection (all frame pairs i < j of the valid-pose frames)
    min_overlap: float = 0.2  # fraction of frame i's samples visible in frame j
    max_overlap: float = 1.0
    min_rotation_deg: float = 0.0
    min_translation_m: float = 0.0
    min_motion_px: float = 16.0  # median image motion of the visible samples
    max_pairs: int | None = None  # random subset of the selected pairs if more
    # negatives
    negative_distance_m: float = 0.3  # a negative is further than this in 3D
    negatives_per_point: int = 4  # candidates drawn per positive (kept if valid)
    local_negative_px: tuple[float, float] = (16.0, 48.0)  # distance from the true reprojection
    local_negative_distance_m: float | None = None  # 3D distance for local negatives (None: negative_distance_m)
    tie_tolerance: float = 1e-6  # AUROC: |pos - neg| <= this counts as a tie
    # nearest-neighbour recall
    recall_stride_px: float = 16.0  # the search grid has one cell per stride x stride pixels
    recall_radii_px: tuple[float, ...] = (16.0, 32.0, 64.0)
    recall_points_per_pair: int = 64
    # breakdowns
    rotation_bins_deg: tuple[float, ...] = (0.0, 5.0, 15.0, 30.0, 60.0)
    motion_bins_px: tuple[float, ...] = (0.0, 16.0, 32.0, 64.0, 128.0)
    chunk_points: int = 2048  # points per vectorised chunk (bounds memory)

    def __post_init__(self) -> None:
        def bad(name, expected):
            raise Vega3DError(f"probe option {name}={getattr(self, name)!r}: expected {expected}")

        for name in ("paper_voxel_size", "negative_distance_m", "recall_stride_px"):
            if not getattr(self, name) > 0:
                bad(name, "a positive number")
        for name in ("points_per_frame", "negatives_per_point", "recall_points_per_pair", "chunk_points"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                bad(name, "a positive integer")
        if not 0 <= self.paper_min_valid_fraction <= 1:
            bad("paper_min_valid_fraction", "a fraction in [0, 1]")
        if not 0 <= self.min_overlap <= self.max_overlap <= 1:
            bad("min_overlap", f"0 <= min_overlap <= max_overlap ({self.max_overlap}) <= 1")
        if self.max_pairs is not None and not (isinstance(self.max_pairs, int) and self.max_pairs > 0):
            bad("max_pairs", "None or a positive integer")
        if self.local_negative_distance_m is not None and not self.local_negative_distance_m > 0:
            bad("local_negative_distance_m", "None or a positive number of metres")
        lo, hi = self.local_negative_px
        if not 0 < lo <= hi:
            bad("local_negative_px", "(low, high) pixels with 0 < low <= high")
        if not self.recall_radii_px or min(self.recall_radii_px) <= 0:
            bad("recall_radii_px", "one or more positive pixel radii")

    @classmethod
    def from_kwargs(cls, **options) -> "ProbeOptions":
        """Build from keyword arguments, with a clear error for an unknown name."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise Vega3DError(f"unknown probe option(s) {unknown}; valid options: {sorted(names)}")
        for key in ("local_negative_px", "recall_radii_px", "rotation_bins_deg", "motion_bins_px"):
            if key in options:
                options[key] = tuple(float(v) for v in options[key])
        return cls(**options)

    def to_dict(self) -> dict:
        return asdict(self)


def _clean(value):
    """JSON-safe copy: NaN/inf -> None, tuples -> lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


@dataclass
class ProbeResult:
    """Scores of one encoder's feature grids on one scene (docs/probe.md has definitions).

    Cosines are in [-1, 1]; the paper quotes its score as a percentage (x100).
    ``nn_recall`` maps a pixel radius (as a string, JSON keys) to a fraction.
    NaN (None in JSON) means "not measurable" (e.g. no point had a local negative).
    """

    paper_score: float
    pos_cosine: float
    neg_cosine: float
    margin: float
    auroc: float
    auroc_local: float
    neg_cosine_local: float
    margin_local: float
    nn_recall: dict[str, float]
    nn_recall_same_location: dict[str, float]
    num_pairs: int
    num_points: int = 0
    num_negatives: int = 0
    num_points_local: int = 0
    num_negatives_local: int = 0
    nn_recall_num_points: int = 0
    paper_num_pairs: int = 0
    paper_voxels_per_pair: float = float("nan")
    pose_consistency: float = float("nan")
    num_frames: int = 0
    num_frames_used: int = 0
    excluded_frames: list = field(default_factory=list)  # frame ids with invalid poses
    pairs_considered: int = 0
    pairs_rejected: dict = field(default_factory=dict)  # reason -> count
    by_rotation: list = field(default_factory=list)
    by_motion: list = field(default_factory=list)
    pairs: list = field(default_factory=list)
    grid_size: tuple = ()
    search_grid: tuple = ()
    image_size: tuple = ()
    depth_size: tuple = ()
    options: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """Strict-JSON-safe dict (NaN -> None)."""
        return _clean(asdict(self))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def table(self, title: str = "") -> str:
        """A short readable summary."""
        def f(x):
            return "  n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:6.3f}"

        rows = [
            ("paper score (adjacent pairs, voxels)", f(self.paper_score)),
            ("AUROC, position-controlled (headline)", f(self.auroc_local)),
            ("AUROC, random negatives", f(self.auroc)),
            ("cosine: positive / negative / margin", f"{f(self.pos_cosine)} / {f(self.neg_cosine)} / {f(self.margin)}"),
            ("cosine: local negative / margin", f"{f(self.neg_cosine_local)} / {f(self.margin_local)}"),
        ]
        for r, v in self.nn_recall.items():
            rows.append((f"NN recall @{float(r):g}px (same-location guess)", f"{f(v)} ({f(self.nn_recall_same_location[r])})"))
        rows.append(("pairs / points / frames used", f"{self.num_pairs} / {self.num_points} / {self.num_frames_used} of {self.num_frames}"))
        width = max(len(r[0]) for r in rows)
        lines = [title] if title else []
        lines += [f"{name:<{width}}  {val}" for name, val in rows]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


HEADLINE = ("auroc_local", "auroc", "paper_score", "pos_cosine", "neg_cosine", "margin", "neg_cosine_local",
            "margin_local")


def summarize(results: list[ProbeResult]) -> dict:
    """Mean and standard deviation over scenes (one :class:`ProbeResult` each) of the headline
    fields and of every NN-recall radius; NaN entries (not measurable in a scene) are left out
    and ``count`` says how many scenes each mean uses. Scenes are weighted equally."""
    if not results:
        raise Vega3DError("summarize: no probe results given")

    def stats(values):
        vals = [v for v in values if v is not None and math.isfinite(v)]
        if not vals:
            return {"mean": None, "std": None, "count": 0}
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
        return {"mean": mean, "std": std, "count": len(vals)}

    out = {"num_scenes": len(results), "num_pairs": sum(r.num_pairs for r in results)}
    for name in HEADLINE:
        out[name] = stats([getattr(r, name) for r in results])
    for key in ("nn_recall", "nn_recall_same_location"):
        radii = sorted({k for r in results for k in getattr(r, key)}, key=float)
        out[key] = {k: stats([getattr(r, key).get(k) for r in results]) for k in radii}
    return out
