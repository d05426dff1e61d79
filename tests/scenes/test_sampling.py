import numpy as np
import pytest

from vega3d.errors import Vega3DError
from vega3d.scenes import sample_frames


def test_examples_follow_llava_video_linspace_floor():
    assert sample_frames(10, 4) == [0, 3, 6, 9]
    assert sample_frames(10, 3) == [0, 4, 9]  # 4.5 floors to 4 (not rounded to 5 or 4 by banker's rule)
    assert sample_frames(100, 32) == np.linspace(0, 99, 32, dtype=int).tolist()
    assert sample_frames(7, 1) == [0]


@pytest.mark.parametrize("n", [1, 2, 5, 31, 32, 33, 97, 1000])
def test_unique_sorted_in_range_and_ends_included(n):
    for k in range(1, min(n, 64) + 1):
        got = sample_frames(n, k)
        assert len(got) == k == len(set(got))
        assert got == sorted(got) and got[0] == 0 and 0 <= got[-1] <= n - 1
        if k >= 2:
            assert got[-1] == n - 1


def test_more_than_available_returns_each_frame_once():
    assert sample_frames(5, 9) == [0, 1, 2, 3, 4]
    assert sample_frames(5, 5) == [0, 1, 2, 3, 4]


def test_spacing_is_uniform():
    got = np.diff(sample_frames(1000, 32))
    assert got.max() - got.min() <= 1


@pytest.mark.parametrize("args", [(0, 3), (5, 0), (5, -1), (5, 2.5), (True, 2), ("10", 2)])
def test_bad_arguments(args):
    with pytest.raises(Vega3DError, match="sample_frames"):
        sample_frames(*args)
