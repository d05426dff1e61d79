"""The real TUM RGB-D sample (SensReader layout, 5000 depth units per metre): the ``tum_sample``
fixture (tests/conftest.py) skips without ../shared and fails when ../shared lacks the sample."""

import pytest
import torch

from vega3d.scenes import load_scene
from vega3d.scenes.geometry import depth_consistency

FLIP_GL = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


@pytest.fixture(scope="module")
def tum(tum_sample):
    return load_scene(tum_sample)


def test_loads_with_metric_depth(tum):
    assert len(tum) == 10 and tum.frame_ids == tuple(range(10))
    assert tum.image_size == (480, 640) and tum.depth_size == (480, 640)
    assert tum.extras["depth_scale"] == 5000.0 and bool(tum.pose_valid.all())
    valid = tum.depth[tum.depth > 0]
    assert 0.7 < float(valid.min()) and float(valid.max()) < 4.0  # README: 0.81-3.76 m
    assert 0.9 < float(valid.median()) < 1.3
    assert 0.15 < float((tum.depth == 0).double().mean()) < 0.35  # about 25 % no reading
    assert float(tum.intrinsics_color[0, 0]) == 525.0


def test_depth_consistency_matches_the_readme(tum):
    # README (ROS default intrinsics): 0->1 0.93 cm, 0->5 0.38 cm, 0->9 1.45 cm median |dz|, 91.6 % inside for 0->9
    r9 = depth_consistency(tum.depth[0], tum.poses[0], tum.depth[9], tum.poses[9], tum.intrinsics_depth, stride=4)
    assert 0.005 < r9["median_abs_dz"] < 0.025 and 0.85 < r9["inside"] < 0.97
    r5 = depth_consistency(tum.depth[0], tum.poses[0], tum.depth[5], tum.poses[5], tum.intrinsics_depth, stride=4)
    assert r5["median_abs_dz"] < 0.008
    # negative controls from the README: OpenGL axes ~20 cm, inverted poses ~5.5 cm
    gl = depth_consistency(
        tum.depth[0], tum.poses[0] @ FLIP_GL, tum.depth[9], tum.poses[9] @ FLIP_GL, tum.intrinsics_depth, stride=4
    )
    inv = torch.linalg.inv(tum.poses)
    inverted = depth_consistency(tum.depth[0], inv[0], tum.depth[9], inv[9], tum.intrinsics_depth, stride=4)
    assert gl["median_abs_dz"] > 0.1 and inverted["median_abs_dz"] > 0.04


def test_uniform_sampling_on_real_folder(tum, tum_sample):
    sub = load_scene(tum_sample, frames=4)
    assert sub.frame_ids == (0, 3, 6, 9)
    assert torch.equal(sub.depth, tum.depth[[0, 3, 6, 9]])
