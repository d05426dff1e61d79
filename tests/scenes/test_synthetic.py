import pytest
import torch

from vega3d.errors import Vega3DError
from vega3d.scenes import Scene, synthetic_scene
from vega3d.scenes.geometry import backproject, depth_consistency, project

FLIP_GL = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


@pytest.fixture(scope="module")
def scene():
    return synthetic_scene(num_frames=6, height=96, width=128, seed=3)


def test_shapes_types_and_ids(scene):
    assert isinstance(scene, Scene)
    assert scene.color.shape == (6, 96, 128, 3) and scene.color.dtype == torch.uint8
    assert scene.depth.shape == (6, 96, 128) and scene.depth.dtype == torch.float32
    assert scene.poses.shape == (6, 4, 4) and scene.poses.dtype == torch.float64
    assert scene.frame_ids == tuple(range(6))
    assert bool(scene.pose_valid.all())
    assert bool((scene.depth > 0.3).all()) and float(scene.depth.max()) < 10  # every ray hits the room
    assert scene.extras["surface_id"].shape == (6, 96, 128)
    k = scene.intrinsics_color
    assert float(k[0, 2]) == 64.0 and float(k[1, 2]) == 48.0 and float(k[0, 0]) == float(k[1, 1])


def test_single_frame_and_empty_room():
    s = synthetic_scene(num_frames=1, height=16, width=16, num_boxes=0, num_spheres=0)
    assert len(s) == 1 and s.extras["objects"]["boxes"] == [] and bool((s.extras["surface_id"] < 6).all())


def _same_surface_consistency(scene, poses, i, j):
    """Back-project frame i's depth with ``poses``, project into frame j, and compare with frame j's
    depth (bilinear between pixel centres) for points that land on the same surface (all four
    neighbouring pixels) and are not hidden behind something nearer. Returns (count, consistent)."""
    h, w = scene.depth.shape[1:]
    x_world = backproject(scene.depth[i], scene.intrinsics_depth, poses[i]).reshape(-1, 3)
    src = scene.extras["surface_id"][i].flatten().long()
    uv, z = project(x_world, scene.intrinsics_depth, poses[j])
    x, y = uv[:, 0] - 0.5, uv[:, 1] - 0.5
    x0, y0 = x.floor().long(), y.floor().long()
    inside = (z > 0) & (x0 >= 0) & (x0 + 1 < w) & (y0 >= 0) & (y0 + 1 < h)
    x0, y0, z, src = x0[inside], y0[inside], z[inside], src[inside]
    fx, fy = (x - x.floor())[inside], (y - y.floor())[inside]
    depth_j, surf_j = scene.depth[j].double(), scene.extras["surface_id"][j].long()
    corners = [(y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)]
    observed = torch.stack([depth_j[a, b] for a, b in corners], 1)
    same = torch.stack([surf_j[a, b] for a, b in corners], 1).eq(src[:, None]).all(1)
    weights = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1)
    dz = (observed * weights).sum(1) - z
    visible = same & (dz > -0.01)
    return int(visible.sum()), int((visible & (dz.abs() < 0.01)).sum())


PAIRS = [(0, 1), (1, 2), (2, 4), (5, 3), (0, 5)]


def test_depth_is_geometrically_exact_across_views(scene):
    fractions = []
    for i, j in PAIRS:
        count, consistent = _same_surface_consistency(scene, scene.poses, i, j)
        assert count > 1000
        fractions.append(consistent / count)
    assert min(fractions) > 0.8 and sum(fractions) / len(fractions) > 0.95, fractions


def test_depth_consistency_helper_on_adjacent_frames(scene):
    r = depth_consistency(
        scene.depth[0], scene.poses[0], scene.depth[1], scene.poses[1], scene.intrinsics_depth, bilinear=True
    )
    assert r["median_abs_dz"] < 1e-3 and r["inside"] > 0.5
    assert (r["abs_dz"] < 0.01).double().mean() > 0.75  # the rest are occlusions


@pytest.mark.parametrize("wrong", ["opengl_axes", "inverted", "transposed_rotation"])
def test_wrong_pose_conventions_break_consistency(scene, wrong):
    p = scene.poses
    if wrong == "opengl_axes":
        p = p @ FLIP_GL
    elif wrong == "inverted":
        p = torch.linalg.inv(p)
    else:
        p = p.clone()
        p[:, :3, :3] = p[:, :3, :3].transpose(1, 2)
    counts = [_same_surface_consistency(scene, p, i, j) for i, j in PAIRS]
    pooled = sum(c for _, c in counts) / max(sum(n for n, _ in counts), 1)
    assert pooled < 0.2, counts


def test_back_projected_points_lie_on_the_known_surfaces(scene):
    # independent of the renderer's internals: depth + intrinsics + pose must put every pixel on
    # the surface it shows (room planes, box faces, sphere shells from extras["objects"])
    obj = scene.extras["objects"]
    lo, hi = torch.tensor(obj["room_lo"], dtype=torch.float64), torch.tensor(obj["room_hi"], dtype=torch.float64)
    plane = {0: (0, lo[0]), 1: (0, hi[0]), 2: (1, lo[1]), 3: (1, hi[1]), 4: (2, lo[2]), 5: (2, hi[2])}
    n_boxes = len(obj["boxes"])
    for k in range(len(scene)):
        pts = backproject(scene.depth[k], scene.intrinsics_depth, scene.poses[k])
        sid = scene.extras["surface_id"][k].long()
        for s in torch.unique(sid).tolist():
            p = pts[sid == s]
            if s < 6:
                axis, value = plane[s]
                err = (p[:, axis] - value).abs()
            elif s < 6 + n_boxes:
                b = obj["boxes"][s - 6]
                blo, bhi = torch.tensor(b["lo"], dtype=torch.float64), torch.tensor(b["hi"], dtype=torch.float64)
                # on the box surface: inside the box (within tolerance) and on one of its faces
                outside = torch.maximum(blo - p, p - bhi).clamp(min=0).amax(1)
                face = torch.minimum((p - blo).abs(), (p - bhi).abs()).amin(1)
                err = torch.maximum(outside, face)
            else:
                sp = obj["spheres"][s - 6 - n_boxes]
                err = ((p - torch.tensor(sp["center"], dtype=torch.float64)).norm(dim=1) - sp["radius"]).abs()
            assert float(err.max()) < 2e-3, (k, s, float(err.max()))  # float32 depth at up to ~6 m


def test_camera_looks_into_the_room(scene):
    eye, forward = scene.poses[:, :3, 3], scene.poses[:, :3, 2]
    to_axis = torch.tensor([0.0, 0.0, 0.75], dtype=torch.float64) - eye
    cos = (forward * to_axis).sum(1) / to_axis.norm(dim=1)
    assert bool((cos > 0.8).all()), cos  # looking at the middle of the room, where the objects are
    # image "down" (camera +y) points to the floor (world -z), so the picture is upright
    assert bool((scene.poses[:, 2, 1] < -0.5).all())
    lo, hi = scene.extras["objects"]["room_lo"], scene.extras["objects"]["room_hi"]
    assert all(lo[a] < float(eye[k, a]) < hi[a] for k in range(len(scene)) for a in range(3))


def test_camera_moves_and_rotates(scene):
    t = scene.poses[:, :3, 3]
    step = (t[1:] - t[:-1]).norm(dim=1)
    assert bool((step > 0.05).all())  # real parallax between every pair of adjacent frames
    r_rel = scene.poses[:-1, :3, :3].transpose(1, 2) @ scene.poses[1:, :3, :3]
    angle = torch.arccos(((r_rel.diagonal(dim1=1, dim2=2).sum(1) - 1) / 2).clamp(-1, 1))
    assert bool((angle > torch.deg2rad(torch.tensor(2.0, dtype=torch.float64))).all())
    rot = scene.poses[:, :3, :3]
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(rot.transpose(1, 2) @ rot, eye.expand(6, 3, 3), atol=1e-9)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(6, dtype=torch.float64))


def test_textures_discriminate_places(scene):
    # many distinct colours, and every surface visible has texture (not a flat colour)
    colours = scene.color.reshape(-1, 3)
    assert torch.unique(colours, dim=0).shape[0] > 5000
    sid = scene.extras["surface_id"]
    for s in torch.unique(sid).tolist():
        pix = scene.color[sid == s].float()
        if pix.shape[0] > 200:
            assert pix.std(0).max() > 8, f"surface {s} is flat"


def test_deterministic_by_seed_and_seed_matters():
    a = synthetic_scene(num_frames=2, height=32, width=40, seed=7)
    b = synthetic_scene(num_frames=2, height=32, width=40, seed=7)
    c = synthetic_scene(num_frames=2, height=32, width=40, seed=8)
    assert torch.equal(a.color, b.color) and torch.equal(a.depth, b.depth) and torch.equal(a.poses, b.poses)
    assert not torch.equal(a.color, c.color)
    assert a.extras["generator"]["seed"] == 7


def test_separate_depth_resolution_is_consistent_with_colour():
    s = synthetic_scene(num_frames=2, height=64, width=80, depth_size=(32, 40), seed=1)
    assert s.depth.shape == (2, 32, 40) and s.color.shape == (2, 64, 80, 3)
    assert torch.allclose(s.intrinsics_depth[:2], s.intrinsics_color[:2] / 2)
    full = synthetic_scene(num_frames=2, height=64, width=80, seed=1)
    # the depth pixel (r, c) covers colour pixels (2r..2r+1, 2c..2c+1); its centre is their shared corner
    corner = (
        full.depth[:, 0::2, 0::2] + full.depth[:, 1::2, 1::2] + full.depth[:, 0::2, 1::2] + full.depth[:, 1::2, 0::2]
    )
    close = ((corner / 4 - s.depth).abs() < 0.01).double().mean()
    assert close > 0.9


def test_select_keeps_per_frame_extras(scene):
    sub = scene.select([4, 1])
    assert sub.frame_ids == (4, 1)
    assert torch.equal(sub.extras["surface_id"][0], scene.extras["surface_id"][4])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_frames=0),
        dict(height=4),
        dict(width=2.5),
        dict(fov_degrees=200.0),
        dict(depth_size=(4, 4)),
        dict(num_boxes=-1),
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(Vega3DError, match="synthetic_scene"):
        synthetic_scene(**kwargs)
