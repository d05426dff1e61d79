"""The geometry of issue 9 (items 3 and 5) against independent hand computations.

References here are written from the formulas (numpy loops, float64) or worked by hand; none calls
the code under test. The released-code comparisons (OpenCV, PositionEmbeddingSine3D, the patch14
selection loop) were run outside the repository: docs/video3d.md, "How this was checked".
"""

import math

import numpy as np
import pytest
import torch

from vega3d.errors import Vega3DError
from vega3d.video3d import (
    TOKENS_PER_FRAME,
    box_cells,
    discretize,
    map_pixels,
    nearest_indices,
    object_features,
    patch_world_coords,
    select_multi,
    select_single,
    sin3d,
    unproject_depth,
    world_coordinate_map,
)


# ---------------------------------------------------------------------------- references
def ref_unproject(depth, k_file, pose):
    """World point of every pixel, the release's way: integer (u, v), the file's intrinsics."""
    h, w = depth.shape
    out = np.zeros((h, w, 3))
    for v in range(h):
        for u in range(w):
            z = depth[v, u]
            cam = np.array([(u - k_file[0, 2]) * z / k_file[0, 0], (v - k_file[1, 2]) * z / k_file[1, 1], z, 1.0])
            p = pose @ cam
            out[v, u] = p[:3] / p[3]
    return out


def ref_sin3d(p, dim):
    nf = dim // 3
    out = np.zeros(dim)
    for a in range(3):
        for i in range(nf):
            d = 10000.0 ** (2 * (i // 2) / nf)
            out[a * nf + i] = math.sin(p[a] / d) if i % 2 == 0 else math.cos(p[a] / d)
    return out


def ref_discretize(xyz, voxel=0.1, lo=(-15, -15, -5), hi=(15, 15, 5)):
    return np.round((np.clip(xyz, lo, hi) - np.asarray(lo)) / voxel)  # numpy rounds half to even


def ref_cells(world, box, threshold=98):
    lo, hi = box[:3] - box[3:] / 2, box[3:] / 2 + box[:3]
    out = np.zeros((27, 27), bool)
    for i in range(27):
        for j in range(27):
            block = world[14 * i : 14 * i + 14, 14 * j : 14 * j + 14].reshape(-1, 3)
            inside = np.all((block >= lo) & (block <= hi), axis=1)
            out[i, j] = inside.sum() >= threshold
    return out


def rigid(rng):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = q, rng.normal(size=3)
    return m


# ---------------------------------------------------------------------------- nearest resize
def test_nearest_indices_by_hand():
    assert nearest_indices(640, 384)[:6].tolist() == [0, 1, 3, 5, 6, 8]  # floor(x * 5/3)
    assert nearest_indices(480, 384)[:6].tolist() == [0, 1, 2, 3, 5, 6]  # floor(x * 1.25)
    assert nearest_indices(2, 5).tolist() == [0, 0, 0, 1, 1]  # upsampling: floor(x * 0.4)
    assert nearest_indices(3, 2).tolist() == [0, 1]
    assert nearest_indices(5, 5).tolist() == [0, 1, 2, 3, 4]
    # OpenCV's double rounding (ifx = 1 / (98 / 2)): 49 * ifx = 0.999..., so column 0, not 1
    assert nearest_indices(2, 98)[49] == 0


def test_map_pixels_resize_and_center_crop_by_hand():
    rows, cols = map_pixels(6, 12, 3, "center_crop")  # resize to 6 x 3 (int(12 * 3 / 6)), crop columns 1..3
    assert rows.tolist() == [0, 2, 4] and cols.tolist() == [2, 4, 6]
    rows, cols = map_pixels(480, 640, 384, "center_crop")  # 512 x 384, columns 64..447
    assert len(rows) == len(cols) == 384
    assert cols[0] == math.floor(64 * 1.25) == 80 and cols[-1] == math.floor(447 * 1.25) == 558
    assert rows.tolist() == nearest_indices(480, 384).tolist()
    rows, cols = map_pixels(480, 640, 384, "resize")
    assert cols.tolist() == nearest_indices(640, 384).tolist()
    with pytest.raises(Vega3DError, match="landscape"):
        map_pixels(640, 480, 384, "center_crop")
    with pytest.raises(Vega3DError, match="strategy"):
        map_pixels(480, 640, 384, "pad")


# ---------------------------------------------------------------------------- world coordinates
def test_world_coordinate_map_small_case_by_hand():
    depth = np.full((2, 2), 2.0)
    k = np.array([[1.0, 0, 1.0], [0, 1.0, 1.0], [0, 0, 1]])  # centres at +0.5: pixels at -0.5 and +0.5 of cx
    pose = np.eye(4)
    pose[:3, 3] = [10, 20, 30]
    align = np.eye(4)
    align[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90 degrees about z: (x, y) -> (-y, x)
    world = world_coordinate_map(depth, k, pose, align, size=2).double().numpy()
    # camera points (x, y, z): (-1, -1, 2), (1, -1, 2) / (-1, 1, 2), (1, 1, 2); + (10, 20, 30); then (-y, x, z)
    want = np.array([[[-19, 9, 32], [-19, 11, 32]], [[-21, 9, 32], [-21, 11, 32]]], float)
    assert np.allclose(world, want, atol=1e-5)
    assert world_coordinate_map(depth, k, pose, size=2).dtype == torch.float32


def test_depth_zero_is_the_camera_centre_not_masked():
    depth = np.array([[0.0, 3.0], [0.0, 0.0]])
    pose = np.eye(4)
    pose[:3, 3] = [1.5, -2.0, 0.25]
    world = world_coordinate_map(depth, np.diag([2.0, 2.0, 1.0]), pose, size=2).numpy()
    assert np.allclose(world[0, 0], [1.5, -2.0, 0.25]) and np.allclose(world[1, 1], [1.5, -2.0, 0.25])
    assert not np.allclose(world[0, 1], [1.5, -2.0, 0.25])


@pytest.mark.parametrize("strategy", ["resize", "center_crop"])
def test_world_coordinate_map_matches_a_pixel_loop(strategy):
    rng = np.random.default_rng(0)
    h, w, size = 15, 20, 24
    depth = rng.uniform(0.5, 4, (2, h, w))
    depth[:, 0, :3] = 0
    k_file = np.array([[18.0, 0, 9.3], [0, 17.5, 7.1], [0, 0, 1]])
    k_lib = k_file.copy()
    k_lib[0, 2] += 0.5
    k_lib[1, 2] += 0.5
    poses = np.stack([rigid(rng), rigid(rng)])
    align = rigid(rng)
    got = world_coordinate_map(depth, k_lib, poses, align, size=size, strategy=strategy).double().numpy()
    for n in range(2):
        full = ref_unproject(depth[n], k_file, align @ poses[n])
        if strategy == "resize":
            ri = [min(math.floor(i * h / size), h - 1) for i in range(size)]
            ci = [min(math.floor(j * w / size), w - 1) for j in range(size)]
        else:  # resize to int(20 * 24 / 15) = 32 x 24, keep columns 4..27
            new_w = int(w * size / h)
            left = (new_w - size) // 2
            ri = [min(math.floor(i * h / size), h - 1) for i in range(size)]
            ci = [min(math.floor(j * w / new_w), w - 1) for j in range(left, left + size)]
        want = full[np.ix_(ri, ci)]
        assert np.allclose(got[n], want, atol=1e-5)
    full = unproject_depth(depth[0], k_lib, poses[0], align).numpy()
    assert np.allclose(full, ref_unproject(depth[0], k_file, align @ poses[0]), atol=1e-5)
    projective = align.copy()
    projective[3] = [0.01, -0.02, 0.03, 1.5]  # not rigid: the homogeneous divide matters
    got = world_coordinate_map(depth[0], k_lib, poses[0], projective, size=size).double().numpy()
    ri = [min(math.floor(i * h / size), h - 1) for i in range(size)]
    ci = [min(math.floor(j * w / size), w - 1) for j in range(size)]
    assert np.allclose(got, ref_unproject(depth[0], k_file, projective @ poses[0])[np.ix_(ri, ci)], atol=1e-5)


def test_world_coordinate_map_bad_input():
    k = np.eye(3)
    with pytest.raises(Vega3DError, match="not finite"):
        world_coordinate_map(np.ones((4, 4)), k, np.full((4, 4), -np.inf))
    with pytest.raises(Vega3DError, match=">= 0"):
        world_coordinate_map(-np.ones((4, 4)), k, np.eye(4))
    with pytest.raises(Vega3DError, match="c2w must be"):
        world_coordinate_map(np.ones((2, 4, 4)), k, np.eye(4)[None])
    with pytest.raises(Vega3DError, match="fx, fy > 0"):
        world_coordinate_map(np.ones((4, 4)), np.zeros((3, 3)), np.eye(4))


# ---------------------------------------------------------------------------- token positions
def test_patch_world_coords_by_hand_and_ignores_the_last_six_pixels():
    world = np.zeros((384, 384, 3), np.float32)
    world[..., 0] = np.arange(384)[None, :]  # x = column
    world[..., 1] = np.arange(384)[:, None]  # y = row
    world[378:, :, 2] = 1e6
    world[:, 378:, 2] = 1e6
    got = patch_world_coords(torch.from_numpy(world)).numpy()
    assert got.shape == (14, 14, 3)
    assert got[0, 0].tolist() == [13.0, 13.0, 0.0]  # mean of 0..26
    assert got[0, 13, 0] == 364.0 and got[13, 0, 1] == 364.0  # mean of 351..377
    assert (got[..., 2] == 0).all()


def test_patch_world_coords_matches_a_loop_with_batch_dims():
    rng = np.random.default_rng(1)
    world = rng.normal(size=(2, 384, 384, 3))
    got = patch_world_coords(torch.from_numpy(world)).numpy()
    for n in range(2):
        for i in range(14):
            for j in range(14):
                assert np.allclose(got[n, i, j], world[n, 27 * i : 27 * i + 27, 27 * j : 27 * j + 27].mean((0, 1)))
    with pytest.raises(Vega3DError, match="378"):
        patch_world_coords(torch.zeros(300, 384, 3))


def test_discretize_by_hand_and_rounds_half_to_even():
    got = discretize(torch.tensor([[0.0, 0.0, 0.0], [-20.0, 20.0, 0.04], [1.26, -3.0, 7.0]]))
    assert got.tolist() == [[150, 150, 50], [0, 300, 50], [163, 120, 100]]
    half = discretize(torch.tensor([0.5, 1.5, 2.5]), voxel_size=1.0, min_xyz=(0, 0, 0), max_xyz=(9, 9, 9))
    assert half.tolist() == [0, 2, 2]  # torch.round: half to even
    rng = np.random.default_rng(2)
    xyz = rng.normal(0, 8, (500, 3))
    assert np.array_equal(discretize(torch.from_numpy(xyz)).numpy(), ref_discretize(xyz))


# ---------------------------------------------------------------------------- sin3d
def test_sin3d_small_dims_by_hand():
    p = torch.tensor([0.0, math.pi / 2, math.pi], dtype=torch.float64)
    got = sin3d(p, 6).numpy()  # num_feats 2: d = (1, 1): sin x, cos x | sin y, cos y | sin z, cos z
    assert np.allclose(got, [0, 1, 1, 0, 0, -1], atol=1e-7)
    assert np.allclose(sin3d(p, 7).numpy(), [0, 1, 1, 0, 0, -1, 0], atol=1e-7)  # one zero channel
    # num_feats 3 (odd): d = (1, 1, 10000^(2/3)): sin x, cos x, sin(x / d2) per axis
    one = sin3d(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), 9).numpy()
    d2 = 10000 ** (2 / 3)
    want = [f(v) for v in (1.0, 2.0, 3.0) for f in (math.sin, math.cos, lambda x: math.sin(x / d2))]
    assert np.allclose(one, want, atol=1e-7)


@pytest.mark.parametrize("dim", [3584, 3585, 3583, 48, 1])
def test_sin3d_matches_the_formula(dim):
    rng = np.random.default_rng(dim)
    pos = ref_discretize(rng.normal(0, 6, (20, 3)))
    got = sin3d(torch.from_numpy(pos).float(), dim)
    assert got.shape == (20, dim) and got.dtype == torch.float32
    want = np.stack([ref_sin3d(p, dim) for p in pos])
    assert np.allclose(got.numpy(), want, atol=2e-4)  # dim_t and the angles in float32, as released
    assert (got[:, 3 * (dim // 3) :] == 0).all()


# ---------------------------------------------------------------------------- object cells
def _ramp_world():
    world = np.zeros((384, 384, 3), np.float32)
    world[..., 0] = np.arange(384)[None, :]  # x = column (exact floats)
    world[..., 1] = np.arange(384)[:, None]  # y = row
    return torch.from_numpy(world)


def test_box_cells_threshold_by_hand():
    world = _ramp_world()
    # x in [0, 13], y in [0, 13]: exactly cell (0, 0) (closed box: column 13 is in)
    cells = box_cells(world, [6.5, 6.5, 0, 13, 13, 2])
    assert cells.shape == (27, 27) and cells.sum() == 1 and cells[0, 0]
    # x in [0, 20]: cell (0, 1) has columns 14..20 = 7 x 14 = 98 pixels -> in (>= 98)
    assert box_cells(world, [10, 6.5, 0, 20, 13, 2])[0, :3].tolist() == [True, True, False]
    # x in [0, 19]: 6 x 14 = 84 pixels -> out; with min_fraction 0.4 (threshold 78) -> in
    assert box_cells(world, [9.5, 6.5, 0, 19, 13, 2])[0, :3].tolist() == [True, False, False]
    assert box_cells(world, [9.5, 6.5, 0, 19, 13, 2], min_fraction=0.4)[0, :3].tolist() == [True, True, False]
    # only the top-left 378 x 378 counts: a box over columns >= 378 selects nothing
    assert box_cells(world, [381, 100, 0, 6, 400, 2]).sum() == 0


def test_box_cells_match_a_loop_for_many_boxes_and_frames():
    rng = np.random.default_rng(3)
    world = rng.uniform(-2, 2, (3, 384, 384, 3)).astype(np.float32)
    world[1, :200, :200] = 0.5  # a flat patch so some cells are in
    boxes = np.concatenate([rng.uniform(-1, 1, (5, 3)), rng.uniform(0.5, 4, (5, 3))], 1).astype(np.float32)
    boxes[0] = [0.5, 0.5, 0.5, 0.2, 0.2, 0.2]
    got = box_cells(torch.from_numpy(world), torch.from_numpy(boxes))
    assert got.shape == (5, 3, 27, 27)
    for p in range(5):
        for f in range(3):
            assert np.array_equal(got[p, f].numpy(), ref_cells(world[f], boxes[p]))
    assert got[0, 1, :14, :14].all()
    single = box_cells(torch.from_numpy(world), torch.from_numpy(boxes[2]))
    assert torch.equal(single, got[2])


def test_box_cells_bad_input():
    with pytest.raises(Vega3DError, match="box must be"):
        box_cells(_ramp_world(), [1, 2, 3])
    with pytest.raises(Vega3DError, match=">= 0"):
        box_cells(_ramp_world(), [0, 0, 0, -1, 1, 1])


# ---------------------------------------------------------------------------- object features
@pytest.mark.parametrize("density", [0.05, 0.6])  # gathered rows / one masked matrix product
def test_object_features_match_a_loop_and_empty_boxes_give_sin3d_only(density):
    rng = np.random.default_rng(4)
    f, d, p = 3, 12, 4
    pre = rng.normal(size=(f, 27, 27, d))
    cells = rng.random((p, f, 27, 27)) < density
    cells[1] = False  # no cell qualifies
    cells[2] = False
    cells[2, 1, 5, 7] = True  # exactly one cell
    centres = rng.normal(0, 3, (p, 3))
    got = object_features(torch.from_numpy(pre), torch.from_numpy(cells), torch.from_numpy(centres)).numpy()
    for k in range(p):
        picked = [pre[a, i, j] for a in range(f) for i in range(27) for j in range(27) if cells[k, a, i, j]]
        mean = np.mean(picked, axis=0) if picked else np.zeros(d)
        assert np.allclose(got[k], mean + ref_sin3d(ref_discretize(centres[k]), d), atol=1e-6)
    assert np.allclose(got[1], ref_sin3d(ref_discretize(centres[1]), d), atol=1e-6)
    assert np.allclose(got[2] - ref_sin3d(ref_discretize(centres[2]), d), pre[1, 5, 7], atol=1e-6)
    flat = object_features(torch.from_numpy(pre).reshape(f, 729, d), torch.from_numpy(cells), torch.from_numpy(centres))
    assert np.allclose(flat.numpy(), got)


def test_object_features_are_differentiable_in_the_features_only_through_selected_cells():
    pre = torch.randn(2, 27, 27, 6, requires_grad=True)
    cells = torch.zeros(2, 2, 27, 27, dtype=torch.bool)
    cells[0, 0, 1, 1] = cells[0, 1, 2, 2] = True
    object_features(pre, cells, torch.zeros(2, 3)).sum().backward()
    grad = pre.grad.sum(-1)
    assert grad[0, 1, 1] == pytest.approx(6 * 0.5) and grad[1, 2, 2] == pytest.approx(6 * 0.5)
    assert int((grad != 0).sum()) == 2


def test_object_features_bad_shapes():
    with pytest.raises(Vega3DError, match="pre_pool"):
        object_features(torch.zeros(2, 26, 26, 4), torch.zeros(1, 2, 27, 27, dtype=torch.bool), torch.zeros(1, 3))
    with pytest.raises(Vega3DError, match="cells"):
        object_features(torch.zeros(2, 27, 27, 4), torch.zeros(1, 3, 27, 27, dtype=torch.bool), torch.zeros(1, 3))
    with pytest.raises(Vega3DError, match="centres"):
        object_features(torch.zeros(2, 27, 27, 4), torch.zeros(1, 2, 27, 27, dtype=torch.bool), torch.zeros(2, 3))


def test_object_cells_on_a_synthetic_scene_with_a_known_box():
    from vega3d.scenes import synthetic_scene

    scene = synthetic_scene(num_frames=4, height=96, width=128, seed=5, num_boxes=2, num_spheres=0)
    box = scene.extras["objects"]["boxes"][0]
    lo, hi = np.asarray(box["lo"]), np.asarray(box["hi"])
    margin = 1e-5  # surface points are ray-cast: they lie on the faces up to rounding (float32 maps)
    known = torch.tensor([*((lo + hi) / 2), *(hi - lo + 2 * margin)], dtype=torch.float32)
    world = world_coordinate_map(scene.depth, scene.intrinsics_depth, scene.poses)
    cells = box_cells(world, known)
    # the same pixels' surface ids (the id map has the depth's size here): 6 = the first box
    rows, cols = map_pixels(96, 128)
    ids = scene.extras["surface_id"][:, rows][:, :, cols][:, :378, :378].reshape(4, 27, 14, 27, 14)
    on_box = (ids == 6).sum(dim=(2, 4))
    assert cells.sum() > 0
    assert torch.equal(cells, on_box >= 98)  # no other surface enters this box
    pre = torch.zeros(4, 27, 27, 3)
    pre[..., 0] = (ids == 6).float().mean(dim=(2, 4))  # feature = share of the cell on the box
    feat = object_features(pre, cells[None], known[None, :3])
    assert 0.5 <= float(feat[0, 0] - sin3d(discretize(known[:3]), 3)[0]) <= 1.0


# ---------------------------------------------------------------------------- predictions
def test_select_multi_by_hand():
    tau = 0.07
    logits = lambda probs: torch.tensor([tau * math.log(p) for p in probs], dtype=torch.float64)  # noqa: E731
    s = logits([0.3, 0.3, 0.25, 0.15])  # zero target last, not the highest
    assert select_multi(s) == [0, 1]  # 0.3 < 0.4, 0.6 >= 0.4; equal probabilities keep index order
    assert select_multi(s, mass=0.3) == [0]  # the proposal reaching the mass is included
    assert select_multi(s, mass=0.7) == [0, 1, 2]  # 0.85
    assert select_multi(s, mass=0.95) == [0, 1, 2]  # never reached: all proposals
    assert select_multi(logits([0.1, 0.2, 0.7])) == []  # the zero target has the highest score
    assert select_multi(torch.tensor([1.0, 1.0])) == [0]  # a tie with the zero target goes to the proposal
    assert select_multi(torch.tensor([0.5])) == []  # no proposals
    assert select_multi([0.2, 0.9, 0.1, 0.0]) == [1]


def test_select_single_by_hand():
    assert select_single([0.3, 0.2, 0.1]) == 0
    assert select_single([0.1, 0.9, 0.95]) == 1  # zero target wins: best real proposal
    assert select_single([0.5, 0.5, 0.1]) == 0
    with pytest.raises(Vega3DError, match="no proposals"):
        select_single([0.2])
    with pytest.raises(Vega3DError, match="1-D"):
        select_multi(torch.zeros(2, 2))


def test_token_count_per_frame():
    assert TOKENS_PER_FRAME == 14 * 15 and 32 * TOKENS_PER_FRAME == 6720
