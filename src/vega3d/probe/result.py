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
            value = getattr(self, name)
            raise Vega3DError(f"probe option {name}={value!r} ({type(value).__name__}): expected {expected}")

        def number(x) -> bool:  # a real number (bool is not one); NaN/inf refused
            return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

        def integer(x) -> bool:
            return isinstance(x, int) and not isinstance(x, bool)

        if not integer(self.seed) or self.seed < 0:
            bad("seed", "an integer >= 0")
        for name in ("points_per_frame", "negatives_per_point", "recall_points_per_pair", "chunk_points"):
            if not (integer(getattr(self, name)) and getattr(self, name) > 0):
                bad(name, "a positive integer")
        for name in ("paper_voxel_size", "negative_distance_m", "recall_stride_px"):
            if not (number(getattr(self, name)) and getattr(self, name) > 0):
                bad(name, "a positive number")
        for name in (
            "depth_abs_tolerance",
            "depth_rel_tolerance",
            "min_rotation_deg",
            "min_translation_m",
            "min_motion_px",
            "tie_tolerance",
        ):
            if not (number(getattr(self, name)) and getattr(self, name) >= 0):
                bad(name, "a number >= 0")
        for name in ("paper_min_valid_fraction", "min_overlap", "max_overlap"):
            if not (number(getattr(self, name)) and 0 <= getattr(self, name) <= 1):
                bad(name, "a fraction in [0, 1]")
        if self.min_overlap > self.max_overlap:
            bad("min_overlap", f"min_overlap <= max_overlap ({self.max_overlap})")
        if self.max_pairs is not None and not (integer(self.max_pairs) and self.max_pairs > 0):
            bad("max_pairs", "None or a positive integer")
        if self.local_negative_distance_m is not None and not (
            number(self.local_negative_distance_m) and self.local_negative_distance_m > 0
        ):
            bad("local_negative_distance_m", "None or a positive number of metres")
        lnp = self.local_negative_px
        if not (isinstance(lnp, tuple) and len(lnp) == 2 and all(number(v) for v in lnp) and 0 < lnp[0] <= lnp[1]):
            bad("local_negative_px", "[low, high] pixels with 0 < low <= high")
        radii = self.recall_radii_px
        if not (isinstance(radii, tuple) and radii and all(number(v) and v > 0 for v in radii)):
            bad("recall_radii_px", "a list of one or more positive pixel radii")
        for name in ("rotation_bins_deg", "motion_bins_px"):
            edges = getattr(self, name)
            if not (
                isinstance(edges, tuple)
                and edges
                and all(number(v) and v >= 0 for v in edges)
                and all(a < b for a, b in zip(edges, edges[1:]))
            ):
                bad(name, "a list of one or more increasing bin edges >= 0")

    @classmethod
    def from_kwargs(cls, **options) -> ProbeOptions:
        """Build from keyword arguments (lists allowed for the tuple fields), with a
        :class:`Vega3DError` naming the option, its value and what is expected for an
        unknown name, a wrong type or a value out of range."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            given = ", ".join(f"{k}={options[k]!r}" for k in unknown)
            raise Vega3DError(f"unknown probe option(s) {given}; valid options: {', '.join(sorted(names))}")
        for key in ("local_negative_px", "recall_radii_px", "rotation_bins_deg", "motion_bins_px"):
            value = options.get(key)
            if isinstance(value, (list, tuple)):  # numbers -> floats; anything else is refused below
                options[key] = tuple(
                    float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value
                )
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
    warnings: list = field(default_factory=list)  # something may be wrong with the input (e.g. the poses)
    notes: list = field(default_factory=list)  # why a number is n/a or what was left out, in words

    def to_dict(self) -> dict:
        """Strict-JSON-safe dict (NaN -> None)."""
        return _clean(asdict(self))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def table(self, title: str = "") -> str:
        """A short readable summary."""

        def f(x):
            return "  n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:6.3f}"

        def na_why(x):  # points n/a values at the note explaining them
            return " (see note)" if f(x) == "  n/a" and self.notes else ""

        excluded = (
            f" (excluded, invalid pose: frame id{'s' if len(self.excluded_frames) > 1 else ''} "
            f"{', '.join(str(i) for i in self.excluded_frames)})"
            if self.excluded_frames
            else ""
        )
        rows = [
            ("paper score (adjacent pairs, voxels)", f(self.paper_score) + na_why(self.paper_score)),
            ("AUROC, position-controlled (headline)", f(self.auroc_local) + na_why(self.auroc_local)),
            ("AUROC, random negatives", f(self.auroc)),
            ("cosine: positive / negative / margin", f"{f(self.pos_cosine)} / {f(self.neg_cosine)} / {f(self.margin)}"),
            ("cosine: local negative / margin", f"{f(self.neg_cosine_local)} / {f(self.margin_local)}"),
        ]
        for r, v in self.nn_recall.items():
            rows.append(
                (f"NN recall @{float(r):g}px (same-location guess)", f"{f(v)} ({f(self.nn_recall_same_location[r])})")
            )
        rows.append(
            (
                "pairs / points / frames used",
                f"{self.num_pairs} / {self.num_points} / {self.num_frames_used} of {self.num_frames}" + excluded,
            )
        )
        width = max(len(r[0]) for r in rows)
        lines = [title] if title else []
        lines += [f"{name:<{width}}  {val}" for name, val in rows]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


HEADLINE = (
    "auroc_local",
    "auroc",
    "paper_score",
    "pos_cosine",
    "neg_cosine",
    "margin",
    "neg_cosine_local",
    "margin_local",
)


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
