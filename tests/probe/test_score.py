import dataclasses
import json

import pytest
import torch

from tests.probe.conftest import SMALL
from tests.probe.helpers import image_fourier_features, world_fourier_features
from vega3d.errors import Vega3DError
from vega3d.probe import ProbeOptions, ProbeResult, score
from vega3d.probe.rigorous import pose_alternatives
from vega3d.scenes import synthetic_scene


@pytest.fixture(scope="module")
def truth(scene):
    return world_fourier_features(scene, grid=(24, 32))


@pytest.fixture(scope="module")
def truth_result(scene, truth):
    return score(scene, truth, **SMALL)


def test_true_3d_features_score_high(truth_result):
    r = truth_result
    assert r.auroc > 0.95 and r.auroc_local > 0.95
    assert r.margin > 0.5 and r.margin_local > 0.5
    assert r.paper_score > 0.9
    assert r.num_pairs >= 10 and r.num_points > 1000 and r.num_points_local > 500
    assert r.nn_recall["16"] > 0.9
    # the same-location guess is far behind on points that moved
    assert r.nn_recall["16"] > r.nn_recall_same_location["16"] + 0.5
    assert r.pose_consistency > 0.7 and not r.warnings
    assert r.notes == [] and "note:" not in r.table()  # nothing left out, nothing n/a


def test_random_features_score_chance(scene):
    f = torch.randn(len(scene), 24, 32, 64, generator=torch.Generator().manual_seed(1))
    r = score(scene, f, **SMALL)
    assert abs(r.auroc - 0.5) < 0.05 and abs(r.auroc_local - 0.5) < 0.06
    assert abs(r.paper_score) < 0.1 and abs(r.margin) < 0.05


def test_constant_features_fool_the_paper_score_but_not_the_auroc(scene):
    f = torch.full((len(scene), 12, 16, 8), 0.3)
    r = score(scene, f, **SMALL)
    assert r.paper_score == pytest.approx(1.0, abs=1e-9)
    assert r.auroc == 0.5 and r.auroc_local == 0.5
    assert r.pos_cosine == pytest.approx(1.0, abs=1e-6)


def test_position_only_features_are_caught_by_the_local_auroc(scene):
    f = image_fourier_features(len(scene), grid=(24, 32), image_size=scene.image_size)
    r = score(scene, f, **SMALL)
    assert r.auroc > 0.6  # random negatives are far away in the image: position alone helps
    assert abs(r.auroc_local - 0.5) < 0.05  # negatives as far from the old position as the match
    assert r.auroc - r.auroc_local > 0.1


@pytest.mark.parametrize("label", list(pose_alternatives(torch.eye(4).repeat(2, 1, 1).double())))
def test_wrong_pose_convention_is_caught(scene, truth, truth_result, label):
    bad = dataclasses.replace(scene, poses=pose_alternatives(scene.poses.double())[label])
    try:
        r = score(bad, truth, **SMALL)
    except Vega3DError as err:
        assert "pose convention looks wrong" in str(err) and label in str(err)
        return
    assert r.auroc_local < truth_result.auroc_local - 0.3
    assert r.warnings and label in r.warnings[0]


def test_invalid_poses_are_excluded_and_never_used(scene, truth):
    poses = scene.poses.clone()
    poses[3] = float("inf")
    bad = dataclasses.replace(scene, poses=poses)
    r = score(bad, truth, **SMALL)
    assert r.excluded_frames == [3] and r.num_frames_used == 7 and r.num_frames == 8
    assert all(3 not in p["frames"] for p in r.pairs)
    other = truth.clone()
    other[3] = torch.randn(other[3].shape, generator=torch.Generator().manual_seed(0))
    assert score(bad, other, **SMALL).to_dict() == r.to_dict()  # frame 3's features are never read
    # same as dropping the frame up front (same draws for the same frames)
    keep = [0, 1, 2, 4, 5, 6, 7]
    r2 = score(scene.select(keep), truth[keep], **SMALL)
    assert r2.auroc == pytest.approx(r.auroc) and r2.auroc_local == pytest.approx(r.auroc_local)
    assert r2.paper_score == pytest.approx(r.paper_score)  # adjacency skips the invalid frame: (2, 4)
    # the table says which frame was left out and why
    assert "frames excluded for an invalid (non-finite) pose, frame ids [3]" in " ".join(r.notes)
    assert "7 of 8 (excluded, invalid pose: frame id 3)" in r.table()


def test_paper_score_na_says_why(scene, truth):
    tiny = score(scene, truth, **{**SMALL, "paper_voxel_size": 1e-4})  # no voxel shared at this grid
    assert tiny.paper_score != tiny.paper_score and tiny.paper_num_pairs == 0
    note = [n for n in tiny.notes if n.startswith("paper score n/a")]
    assert len(note) == 1 and "shares a 0.0001 m voxel at this 24x32 grid" in note[0]
    assert "n/a (see note)" in tiny.table() and "note: paper score n/a" in tiny.table()
    assert tiny.to_dict()["notes"] == tiny.notes
    empty = dataclasses.replace(
        scene, depth=scene.depth * (torch.rand(scene.depth.shape, generator=torch.Generator().manual_seed(1)) < 0.03)
    )  # sparse depth
    sparse = score(empty, truth, **{**SMALL, "paper_min_valid_fraction": 0.9, "min_overlap": 0.0})
    assert any("no feature cell" in n and "paper_min_valid_fraction" in n for n in sparse.notes)


def test_depth_at_another_resolution_is_handled(truth, truth_result):
    lowres = synthetic_scene(num_frames=8, height=96, width=128, seed=0, depth_size=(48, 64))
    r = score(lowres, truth, **SMALL)
    assert r.depth_size == (48, 64)
    assert r.auroc > 0.95 and r.auroc_local > 0.93
    assert r.paper_score == pytest.approx(truth_result.paper_score, abs=0.05)


def test_deterministic_and_seeded(scene, truth, truth_result):
    again = score(scene, truth, **SMALL)
    assert again.to_dict() == truth_result.to_dict()
    other = score(scene, truth, seed=1, **SMALL)
    assert other.num_points != truth_result.num_points or other.pos_cosine != truth_result.pos_cosine
    assert other.paper_score == truth_result.paper_score  # the paper score samples nothing


def test_result_is_strict_json_with_breakdowns(truth_result):
    d = json.loads(truth_result.to_json())
    for key in (
        "paper_score",
        "pos_cosine",
        "neg_cosine",
        "margin",
        "auroc",
        "auroc_local",
        "nn_recall",
        "nn_recall_same_location",
        "num_pairs",
        "by_rotation",
        "by_motion",
        "options",
    ):
        assert key in d
    assert sum(b["num_points"] for b in d["by_rotation"]) == d["num_points"]
    assert sum(b["num_points"] for b in d["by_motion"]) == d["num_points"]
    assert len(d["pairs"]) == d["num_pairs"]
    assert d["options"]["min_motion_px"] == 8.0
    assert isinstance(ProbeResult(**{**dataclasses.asdict(truth_result)}).table(), str)
    assert "position-controlled" in truth_result.table()


def test_pair_selection_by_baseline(scene, truth, truth_result):
    r = score(scene, truth, min_rotation_deg=30.0, **SMALL)
    assert 0 < r.num_pairs < truth_result.num_pairs
    assert all(p["rotation_deg"] >= 30.0 for p in r.pairs)
    assert r.pairs_rejected["rotation below min_rotation_deg"] > 0
    r = score(scene, truth, max_pairs=3, **SMALL)
    assert r.num_pairs == 3


# ---------------------------------------------------------------- bad inputs
def test_feature_count_mismatch(scene, truth):
    with pytest.raises(Vega3DError, match="7 feature grids for 8 frames"):
        score(scene, truth[:7], **SMALL)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_features(scene, truth, value):
    f = truth.clone()
    f[2, 3, 4, 0] = value
    with pytest.raises(Vega3DError, match="positions \\[2\\].*NaN or inf"):
        score(scene, f, **SMALL)


def test_wrong_rank_and_type(scene, truth):
    with pytest.raises(Vega3DError, match="rank 4"):
        score(scene, truth[..., 0], **SMALL)
    with pytest.raises(Vega3DError, match="torch.Tensor"):
        score(scene, truth.numpy(), **SMALL)
    with pytest.raises(Vega3DError, match="floating point"):
        score(scene, truth.long(), **SMALL)


def test_non_invertible_pose(scene, truth):
    bad = dataclasses.replace(scene)
    poses = scene.poses.clone()
    poses[5, :3, :3] = 0.0
    object.__setattr__(bad, "poses", poses)  # a Scene refuses this; the probe checks on its own too
    with pytest.raises(Vega3DError, match="not invertible"):
        score(bad, truth, **SMALL)


def test_no_valid_pairs_says_what_to_relax(scene, truth):
    with pytest.raises(Vega3DError, match="min_overlap=0.99.*Relax"):
        score(scene, truth, **{**SMALL, "min_overlap": 0.99})
    with pytest.raises(Vega3DError, match="min_motion_px"):
        score(scene, truth, **{**SMALL, "min_motion_px": 500.0})


def test_too_few_valid_frames(scene, truth):
    poses = scene.poses.clone()
    poses[1:] = float("nan")
    with pytest.raises(Vega3DError, match="1 frame\\(s\\) with a valid pose"):
        score(dataclasses.replace(scene, poses=poses), truth, **SMALL)


def test_bad_options(scene, truth):
    with pytest.raises(Vega3DError, match="unknown probe option"):
        score(scene, truth, voxel=0.2)
    with pytest.raises(Vega3DError, match="min_overlap"):
        score(scene, truth, min_overlap=0.9, max_overlap=0.5)
    with pytest.raises(Vega3DError, match="local_negative_px"):
        score(scene, truth, local_negative_px=(10.0, 5.0))


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("min_motion_px", "abc", "a number >= 0"),
        ("min_motion_px", -1.0, "a number >= 0"),
        ("min_motion_px", float("nan"), "a number >= 0"),
        ("points_per_frame", 2.5, "a positive integer"),
        ("points_per_frame", True, "a positive integer"),
        ("seed", "0", "an integer >= 0"),
        ("paper_voxel_size", [0.1], "a positive number"),
        ("min_overlap", 1.5, "a fraction in \\[0, 1\\]"),
        ("depth_rel_tolerance", None, "a number >= 0"),
        ("max_pairs", 0, "None or a positive integer"),
        ("local_negative_px", 16, "\\[low, high\\]"),
        ("local_negative_px", [8, "x"], "\\[low, high\\]"),
        ("recall_radii_px", [], "a list of one or more positive pixel radii"),
        ("motion_bins_px", [0, 32, 16], "a list of one or more increasing bin edges"),
    ],
)
def test_option_types_and_ranges_are_checked_up_front(scene, truth, name, value, expected):
    with pytest.raises(Vega3DError, match=f"probe option {name}=.*expected {expected}") as err:
        ProbeOptions.from_kwargs(**{name: value})
    tuple_field = isinstance(ProbeOptions.model_fields[name].default, tuple)
    shown = (
        repr(tuple(float(v) if isinstance(v, int) else v for v in value))
        if tuple_field and isinstance(value, list)
        else repr(value)
    )
    assert f"{name}={shown} (" in str(err.value)  # the value as received is named
    with pytest.raises(Vega3DError, match=f"probe option {name}="):
        score(scene, truth, **{name: value})


def test_unknown_option_names_itself_its_value_and_the_valid_ones():
    with pytest.raises(Vega3DError, match="unknown probe option\\(s\\) min_motion=8; valid options: .*min_motion_px"):
        ProbeOptions.from_kwargs(min_motion=8)


def test_local_negative_distance_option(scene, truth, truth_result):
    near = score(scene, truth, local_negative_distance_m=0.1, **SMALL)
    assert near.num_negatives_local > truth_result.num_negatives_local  # more points qualify
    assert near.num_negatives == truth_result.num_negatives  # global negatives unchanged
    assert near.options["local_negative_distance_m"] == 0.1


def test_builtin_position_encoder_is_the_control(scene):
    from vega3d.encoders import build_encoder

    f = build_encoder("position", grid=(24, 32))(scene.frames())
    r = score(scene, f, **SMALL)
    assert r.auroc > 0.6 and abs(r.auroc_local - 0.5) < 0.05
    # its nearest neighbour is the same location: recall equals the trivial guess
    assert r.nn_recall == pytest.approx(r.nn_recall_same_location, abs=0.02)


def test_summarize_over_scenes(scene, truth, truth_result):
    from vega3d.probe import summarize

    const = score(scene, torch.ones(len(scene), 4, 4, 2), **SMALL)
    s = summarize([truth_result, const])
    assert s["num_scenes"] == 2 and s["num_pairs"] == truth_result.num_pairs + const.num_pairs
    assert s["auroc"]["mean"] == pytest.approx((truth_result.auroc + 0.5) / 2)
    assert s["auroc"]["std"] == pytest.approx(abs(truth_result.auroc - 0.5) / 2)
    assert s["nn_recall"]["16"]["count"] == 2
    json.dumps(s, allow_nan=False)
    with pytest.raises(Vega3DError, match="no probe results"):
        summarize([])
