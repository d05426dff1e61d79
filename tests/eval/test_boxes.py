import math

import pytest

from vega3d import Vega3DError
from vega3d.eval.boxes import OFFICIAL_EPS, box3d_iou


def test_identical_boxes():
    assert box3d_iou([0, 0, 0, 2, 2, 2], [0, 0, 0, 2, 2, 2]) == pytest.approx(1.0, abs=1e-8)
    assert box3d_iou([0, 0, 0, 2, 2, 2], [0, 0, 0, 2, 2, 2], eps=0.0) == 1.0


def test_half_overlap_by_hand():
    # unit cubes shifted by 0.5 in x: inter 0.5, union 1.5
    assert box3d_iou([0, 0, 0, 1, 1, 1], [0.5, 0, 0, 1, 1, 1], eps=0.0) == pytest.approx(1 / 3)


def test_touching_boxes_have_zero_iou():
    assert box3d_iou([0, 0, 0, 1, 1, 1], [1, 0, 0, 1, 1, 1]) == 0.0
    assert box3d_iou([0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1]) == 0.0  # corner contact
    assert box3d_iou([0, 0, 0, 1, 1, 1], [5, 0, 0, 1, 1, 1]) == 0.0  # disjoint


def test_nested_box_is_volume_ratio():
    outer, inner = [0, 0, 0, 2, 2, 2], [0.2, 0, 0, 1, 1, 1]
    assert box3d_iou(outer, inner, eps=0.0) == pytest.approx(1 / 8)
    assert box3d_iou(inner, outer) == box3d_iou(outer, inner)


def test_official_epsilon_moves_exact_half_below_threshold():
    # inner box with exactly half the outer volume: true IoU 0.5,
    # official IoU 0.5 / (1 + 1e-8) fails Acc@0.5 like Video-3D LLM's box_utils.
    outer, inner = [0, 0, 0, 2, 1, 1], [0.5, 0, 0, 1, 1, 1]
    assert box3d_iou(outer, inner, eps=0.0) == 0.5
    official = box3d_iou(outer, inner)
    assert official < 0.5
    assert official == pytest.approx(1.0 / (2.0 + OFFICIAL_EPS), rel=1e-15)


@pytest.mark.parametrize(
    "a, b",
    [
        ([0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1]),  # two flat boxes, same plane
        ([0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]),  # two points
        ([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1]),  # flat box inside a cube
    ],
)
@pytest.mark.parametrize("eps", [OFFICIAL_EPS, 0.0])
def test_degenerate_boxes_give_zero_not_nan(a, b, eps):
    iou = box3d_iou(a, b, eps=eps)
    assert iou == 0.0 and not math.isnan(iou)


@pytest.mark.parametrize(
    "bad, match",
    [
        ([0, 0, math.nan, 1, 1, 1], "non-finite"),
        ([0, 0, 0, 1, math.inf, 1], "non-finite"),
        ([0, 0, 0, -1, 1, 1], ">= 0"),
        ([0, 0, 0, 1, 1], "6 numbers"),
        (["a", 0, 0, 1, 1, 1], "6 numbers"),
    ],
)
def test_bad_boxes_raise(bad, match):
    with pytest.raises(Vega3DError, match=match):
        box3d_iou(bad, [0, 0, 0, 1, 1, 1])
