"""Probe options (a validated :class:`~vega3d.config.Config`) and results (a dataclass that serialises to JSON)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator

from vega3d.config import Config
from vega3d.errors import Vega3DError
from vega3d.files import json_safe


class Expect:
    """What an option's value must be, in words: the end of its one-line error."""

    def __init__(self, text: str):
        self.text = text


def _ordered(strict: bool):
    """A validator of a tuple of numbers in increasing (``strict``) or non-decreasing order."""

    def check(values: tuple[float, ...]) -> tuple[float, ...]:
        if not all(a < b if strict else a <= b for a, b in zip(values, values[1:])):
            raise ValueError("")  # the field's Expect says what is expected
        return values

    return check


Seed = Annotated[int, Field(ge=0), Expect("an integer >= 0")]
Count = Annotated[int, Field(gt=0), Expect("a positive integer")]
Positive = Annotated[float, Field(gt=0), Expect("a positive number")]
NonNegative = Annotated[float, Field(ge=0), Expect("a number >= 0")]
Fraction = Annotated[float, Field(ge=0, le=1), Expect("a fraction in [0, 1]")]
LowHigh = Annotated[
    tuple[Annotated[float, Field(gt=0)], float],
    AfterValidator(_ordered(False)),
    Expect("[low, high] pixels with 0 < low <= high"),
]
Radii = Annotated[
    tuple[Annotated[float, Field(gt=0)], ...],
    Field(min_length=1),
    Expect("a list of one or more positive pixel radii"),
]
BinEdges = Annotated[
    tuple[Annotated[float, Field(ge=0)], ...],
    Field(min_length=1),
    AfterValidator(_ordered(True)),
    Expect("a list of one or more increasing bin edges >= 0"),
]
OptionalCount = Annotated[Annotated[int, Field(gt=0)] | None, Expect("None or a positive integer")]
OptionalMetres = Annotated[Annotated[float, Field(gt=0)] | None, Expect("None or a positive number of metres")]
TUPLE_OPTIONS = ("local_negative_px", "recall_radii_px", "rotation_bins_deg", "motion_bins_px")


class ProbeOptions(Config):
    """Every choice the probe makes (docs/probe.md explains each). Distances in metres,
    image quantities in pixels of the scene's colour frames, angles in degrees.

    Built from keywords (:meth:`from_kwargs` also takes lists for the tuple options); a bad
    value is a one-line :class:`Vega3DError` naming the option, its value and what is expected."""

    seed: Seed = 0  # seeds the one torch.Generator used for all sampling
    # paper-compatible score
    paper_voxel_size: Positive = 0.1  # voxel edge (m) in which cells of two frames are compared
    paper_min_valid_fraction: Fraction = 0.1  # cells with less valid depth are dropped
    # point sampling and visibility
    points_per_frame: Count = 256  # valid-depth pixels sampled in each frame
    depth_abs_tolerance: NonNegative = 0.05  # |depth_j - z_j| <= abs + rel * z_j  -> visible
    depth_rel_tolerance: NonNegative = 0.03  # (relative part of the occlusion test above)
    # pair selection (all frame pairs i < j of the valid-pose frames)
    min_overlap: Fraction = 0.2  # fraction of frame i's samples visible in frame j
    max_overlap: Fraction = 1.0  # at least min_overlap
    min_rotation_deg: NonNegative = 0.0  # relative rotation of the two cameras
    min_translation_m: NonNegative = 0.0  # distance between the two camera centres
    min_motion_px: NonNegative = 16.0  # median image motion of the visible samples
    max_pairs: OptionalCount = None  # random subset of the selected pairs if more
    # negatives
    negative_distance_m: Positive = 0.3  # a negative is further than this in 3D
    negatives_per_point: Count = 4  # candidates drawn per positive (kept if valid)
    local_negative_px: LowHigh = (16.0, 48.0)  # distance from the true reprojection
    local_negative_distance_m: OptionalMetres = None  # 3D distance for local negatives (None: negative_distance_m)
    tie_tolerance: NonNegative = 1e-6  # AUROC: |pos - neg| <= this counts as a tie
    # nearest-neighbour recall
    recall_stride_px: Positive = 16.0  # the search grid has one cell per stride x stride pixels
    recall_radii_px: Radii = (16.0, 32.0, 64.0)  # a match within r px of the true reprojection counts
    recall_points_per_pair: Count = 64  # points per pair searched for their nearest neighbour
    # breakdowns
    rotation_bins_deg: BinEdges = (0.0, 5.0, 15.0, 30.0, 60.0)  # by_rotation: scores per rotation bin
    motion_bins_px: BinEdges = (0.0, 16.0, 32.0, 64.0, 128.0)  # by_motion: scores per image-motion bin
    chunk_points: Count = 2048  # points per vectorised chunk (bounds memory)

    @classmethod
    def error(cls, err: ValidationError, options: dict) -> Vega3DError:
        return _option_error(err, options)

    @field_validator("max_overlap")
    @classmethod
    def _not_below_min_overlap(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min_overlap")
        if low is not None and value < low:
            raise ValueError(f"a fraction >= min_overlap ({low})")
        return value

    @classmethod
    def from_kwargs(cls, **options) -> ProbeOptions:
        """Build from keyword arguments (lists allowed for the tuple options, numbers in them
        read as floats), with a :class:`Vega3DError` naming the option, its value and what is
        expected for an unknown name, a wrong type or a value out of range."""
        for key in TUPLE_OPTIONS:
            value = options.get(key)
            if isinstance(value, (list, tuple)):  # numbers -> floats; anything else is refused by the model
                options[key] = tuple(
                    float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value
                )
        return cls(**options)


def _option_error(err: ValidationError, options: dict) -> Vega3DError:
    """``unknown probe option(s) NAME=VALUE, ...; valid options: ...`` when a name is unknown, else
    ``probe option NAME=VALUE (TYPE): expected WHAT`` for pydantic's first error."""
    first = err.errors(include_url=False)[0]
    unknown = sorted(set(options) - set(ProbeOptions.model_fields))
    if unknown:
        given = ", ".join(f"{k}={options[k]!r}" for k in unknown)
        return Vega3DError(
            f"unknown probe option(s) {given}; valid options: {', '.join(sorted(ProbeOptions.model_fields))}"
        )
    name = first["loc"][0]
    value = options.get(name)
    own = str(first.get("ctx", {}).get("error", "")) if first["type"] == "value_error" else ""
    expect = own or next(m.text for m in ProbeOptions.model_fields[name].metadata if isinstance(m, Expect))
    return Vega3DError(f"probe option {name}={value!r} ({type(value).__name__}): expected {expect}")


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
        return json_safe(asdict(self))

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
