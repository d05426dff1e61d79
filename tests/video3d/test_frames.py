"""Frame selection (issue 9 item 4): uniform, greedy maximum coverage, the ratio rule at load time."""

import numpy as np
import pytest

from vega3d.errors import Vega3DError
from vega3d.video3d import SelectFrames, candidate_positions, frames_for_ratio, max_coverage, uniform_frames, voxel_keys
from vega3d.video3d.frames import encode_voxels


def test_uniform_is_linspace_floor_and_refuses_more_than_available():
    assert uniform_frames(10, 4) == [0, 3, 6, 9]
    assert uniform_frames(100, 32) == np.linspace(0, 99, 32, dtype=int).tolist()
    assert uniform_frames(32, 32) == list(range(32))
    with pytest.raises(Vega3DError, match="40 frames requested but the scan has only 20"):
        uniform_frames(20, 40, what="scan 'scannet/scene0000_00'")
    # the release's behaviour on request: linspace(0, 4, 8) = 0, .57, 1.14, 1.71, 2.29, 2.86, 3.43, 4
    assert uniform_frames(5, 8, repeat=True) == [0, 0, 1, 1, 2, 2, 3, 4]
    for num in ("8", 0, 8.0, True):
        with pytest.raises(Vega3DError, match=rf"scan: the number of frames must be a positive int, got {num!r}"):
            uniform_frames(100, num)


def test_candidates_every_second_frame_unless_fewer_than_32():
    assert candidate_positions(70) == list(range(0, 70, 2))  # 35 candidates
    assert candidate_positions(64) == list(range(0, 64, 2))  # exactly 32
    assert candidate_positions(62) == list(range(62))  # 31 -> all frames
    assert candidate_positions(10, stride=3, min_count=2) == [0, 3, 6, 9]


def test_voxel_keys_round_half_to_even_and_drop_non_finite():
    keys = voxel_keys(np.array([[0.5, 1.5, -0.5], [0.4, 1.6, -0.6], [2.5, 0, 0], [np.nan, 0, 0]]), voxel_size=1.0)
    assert np.array_equal(keys, encode_voxels([[0, 2, 0], [0, 2, -1], [2, 0, 0]]))


def _keys(*sets):
    names = sorted({v for s in sets for v in s})
    code = {v: [i, 0, 0] for i, v in enumerate(names)}
    return [encode_voxels([code[v] for v in s]) for s in sets], code


def test_max_coverage_greedy_by_hand():
    frames, code = _keys("abcd", "ab", "efg", "de")
    got = max_coverage(frames)
    # f0 adds 4; f2 adds e, f, g (3); then f1 and f3 add nothing (0, 0), both still picked, as released
    assert got.order[:2] == [0, 2] and sorted(got.order[2:]) == [1, 3]
    assert got.voxel_nums == [4, 3, 0, 0] and (got.num_all_voxels, got.num_select_voxels) == (7, 7)
    # against the scene's voxels without g: f2 adds e, f (2) and f3 adds e (1): f2 first, then f3 adds 0
    scene = encode_voxels([code[v] for v in "abcdef"])
    got = max_coverage(frames, scene)
    assert got.order[:2] == [0, 2] and got.voxel_nums == [4, 2, 0, 0]
    assert (got.num_all_voxels, got.num_select_voxels) == (6, 6)
    assert max_coverage(frames, max_frames=2).order == [0, 2]


def test_max_coverage_is_greedy_at_every_step_on_random_instances():
    rng = np.random.default_rng(0)
    for _ in range(40):
        n = int(rng.integers(1, 40))
        sets = [set(map(tuple, rng.integers(0, 6, (int(rng.integers(0, 30)), 3)))) for _ in range(n)]
        scene = set(map(tuple, rng.integers(0, 6, (150, 3))))
        keys = [encode_voxels(np.array(sorted(s)).reshape(-1, 3)) for s in sets]
        got = max_coverage(keys, encode_voxels(np.array(sorted(scene)).reshape(-1, 3)), seed=int(rng.integers(9)))
        covered = set()
        for pick, gain in zip(got.order, got.voxel_nums):
            gains = {
                i: len((sets[i] & scene) - covered) for i in range(n) if i not in got.order[: got.order.index(pick)]
            }
            assert gain == gains[pick] == max(gains.values())
            covered |= sets[pick] & scene
        assert len(got.order) == min(32, n) == len(set(got.order))
        assert got.num_all_voxels == len(set().union(*sets) & scene)
        assert got.num_select_voxels == len(covered) == sum(got.voxel_nums)


def test_ties_follow_the_seed():
    frames = [encode_voxels([[i, 0, 0]]) for i in range(12)]  # all tie at every step
    a, b = max_coverage(frames, seed=1), max_coverage(frames, seed=1)
    assert a == b
    assert len({tuple(max_coverage(frames, seed=s).order) for s in range(5)}) > 1


def test_frames_for_ratio_by_hand():
    rec = SelectFrames(
        "scannet/scene0000_00",
        tuple(f"data/scannet/posed_images/scene0000_00/{i:05d}.jpg" for i in (40, 10, 30, 0, 20)),
        (50, 30, 10, 5, 5),
        100,
        100,
    )
    assert frames_for_ratio(rec, 0.9) == [10, 30, 40]  # 50, 80, 90 >= 90
    assert frames_for_ratio(rec, 0.95) == [0, 10, 30, 40]  # 95
    assert frames_for_ratio(rec, 1.0) == [0, 10, 20, 30, 40]
    assert frames_for_ratio(rec, 1.0, frames_upbound=2) == [10, 40]
    assert frames_for_ratio(rec, 0.95, frames_upbound=2) == [10, 40]  # the cap applies first
    with pytest.raises(Vega3DError, match="ratio"):
        frames_for_ratio(rec, 0.0)


def test_frame_ids_of_a_record_built_by_hand_name_a_bad_file():
    rec = SelectFrames("scannet/scene0000_00", ("a/scene0000_00/frame_01.jpg",), (1,), 1, 1)
    with pytest.raises(Vega3DError, match=r"frame file 'a/scene0000_00/frame_01.jpg': expected a name <digits>.jpg"):
        _ = rec.frame_ids
