import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vega3d.errors import Vega3DError
from vega3d.scenes import detect_layout, load_scene, synthetic_scene, write_scene
from vega3d.scenes.scene import Scene


@pytest.fixture(scope="module")
def small():
    return synthetic_scene(num_frames=5, height=32, width=40, seed=2)


@pytest.fixture(scope="module")
def two_res():
    return synthetic_scene(num_frames=3, height=48, width=64, depth_size=(24, 32), seed=4)


def _written(scene, tmp_path, layout, **kw):
    return write_scene(scene, tmp_path / layout, layout, **kw)


def _frame_file(root, layout, kind, fid):
    name = f"{fid:05d}"
    if layout == "sensreader":
        sub, ext = {"color": ("color", "png"), "depth": ("depth", "png"), "pose": ("pose", "txt")}[kind]
        return root / sub / f"{name}.{ext}"
    return root / f"{name}.{ {'color': 'jpg', 'depth': 'png', 'pose': 'txt'}[kind] }"


# ------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("layout", ["sensreader", "posed_images"])
def test_round_trip(small, tmp_path, layout):
    root = _written(small, tmp_path, layout)
    assert detect_layout(root) == layout
    back = load_scene(root)
    assert isinstance(back, Scene) and back.frame_ids == small.frame_ids
    assert back.color.shape == small.color.shape and back.color.dtype == torch.uint8
    diff = (back.color.int() - small.color.int()).abs().float()
    if layout == "sensreader":
        assert diff.max() == 0  # lossless PNG
    else:
        assert diff.mean() < 4  # JPEG, as ScanNet's exporters write
    assert back.depth.dtype == torch.float32
    assert (back.depth - small.depth).abs().max() <= 0.0005 + 1e-6  # millimetre quantisation
    assert torch.allclose(back.poses, small.poses, atol=1e-8)
    assert torch.allclose(back.intrinsics_color, small.intrinsics_color, atol=1e-8)
    assert torch.allclose(back.intrinsics_depth, small.intrinsics_depth, atol=1e-8)
    assert back.extras["layout"] == layout and back.extras["depth_scale"] == 1000.0
    assert back.extras["invalid_pose_frame_ids"] == [] and bool(back.pose_valid.all())
    assert back.name == layout and back.source == str(root)


@pytest.mark.parametrize("layout", ["sensreader", "posed_images"])
def test_different_colour_and_depth_resolutions(two_res, tmp_path, layout):
    back = load_scene(_written(two_res, tmp_path, layout))
    assert back.image_size == (48, 64) and back.depth_size == (24, 32)
    assert torch.allclose(back.intrinsics_depth, two_res.intrinsics_depth, atol=1e-8)
    assert torch.allclose(back.intrinsics_color, two_res.intrinsics_color, atol=1e-8)
    assert not torch.allclose(back.intrinsics_color, back.intrinsics_depth)


def test_depth_scale_file(small, tmp_path):
    root = _written(small, tmp_path, "sensreader", depth_scale=5000.0)
    assert (root / "depth_scale.txt").read_text().strip() == "5000"
    raw = np.asarray(Image.open(root / "depth" / "00001.png")).astype(np.float64)
    assert abs(raw / 5000.0 - small.depth[1].numpy()).max() <= 0.5 / 5000 + 1e-6
    back = load_scene(root)
    assert back.extras["depth_scale"] == 5000.0
    assert (back.depth - small.depth).abs().max() <= 0.5 / 5000 + 1e-6
    # without the file the same PNGs would be read as millimetres: 5x too deep
    (root / "depth_scale.txt").unlink()
    assert torch.allclose(load_scene(root).depth, back.depth * 5, rtol=1e-5)


def test_zero_depth_stays_invalid(small, tmp_path):
    depth = small.depth.clone()
    depth[0, :5, :7] = 0
    scene = Scene(small.color, depth, small.poses, small.intrinsics_color, small.intrinsics_depth, small.frame_ids)
    back = load_scene(write_scene(scene, tmp_path / "z"))
    assert bool((back.depth[0, :5, :7] == 0).all()) and bool((back.depth[0, 5:] > 0).all())


def test_axis_align_round_trip_and_scannet_meta(small, tmp_path):
    align = torch.eye(4, dtype=torch.float64)
    align[:3, 3] = torch.tensor([1.5, -2.0, 0.25], dtype=torch.float64)
    scene = Scene(
        small.color,
        small.depth,
        small.poses,
        small.intrinsics_color,
        small.intrinsics_depth,
        small.frame_ids,
        axis_align=align,
    )
    back = load_scene(write_scene(scene, tmp_path / "a"))
    assert torch.allclose(back.axis_align, align)
    root = write_scene(small, tmp_path / "scene0000_00")
    assert load_scene(root).axis_align is None
    (root / "scene0000_00.txt").write_text("colorHeight = 968\naxisAlignment = 0 1 0 2 -1 0 0 3 0 0 1 0 0 0 0 1\n")
    got = load_scene(root).axis_align
    assert got.tolist()[0] == [0, 1, 0, 2] and got.tolist()[1] == [-1, 0, 0, 3]
    (root / "scene0000_00.txt").write_text("axisAlignment = 1 0 0\n")
    with pytest.raises(Vega3DError, match="axisAlignment must be 16 numbers"):
        load_scene(root)


# ------------------------------------------------------------------------------------ frame ids and selection
@pytest.mark.parametrize("layout", ["sensreader", "posed_images"])
def test_numeric_sorting_padded_or_not(small, tmp_path, layout):
    scene = small.select([0, 1, 2, 3])
    scene = Scene(
        scene.color, scene.depth, scene.poses, scene.intrinsics_color, scene.intrinsics_depth, frame_ids=(2, 10, 1, 100)
    )
    root = _written(scene, tmp_path, layout)
    # strip the zero padding from some files (ScanNet's SensReader writes 0.jpg, 1.jpg, ... 10.jpg)
    for fid in (2, 10):
        for kind in ("color", "depth", "pose"):
            f = _frame_file(root, layout, kind, fid)
            f.rename(f.with_name(f"{fid}{f.suffix}"))
    back = load_scene(root)
    assert back.frame_ids == (1, 2, 10, 100)
    order = [scene.frame_ids.index(f) for f in back.frame_ids]
    assert torch.allclose(back.poses, scene.poses[order], atol=1e-8)
    assert (back.depth - scene.depth[order]).abs().max() <= 0.0005 + 1e-6


def test_frames_int_samples_uniformly(small, tmp_path):
    root = _written(small, tmp_path, "sensreader")
    back = load_scene(root, frames=3)
    assert back.frame_ids == (0, 2, 4)
    assert torch.allclose(back.poses, small.poses[[0, 2, 4]], atol=1e-8)
    assert back.extras["num_available_frames"] == 5
    assert load_scene(root, frames=50).frame_ids == (0, 1, 2, 3, 4)


def test_frames_list_selects_exact_ids_in_order(small, tmp_path):
    root = _written(small, tmp_path, "posed_images")
    back = load_scene(root, frames=[3, 0])
    assert back.frame_ids == (3, 0)
    assert torch.allclose(back.poses, small.poses[[3, 0]], atol=1e-8)


def test_frames_as_arrays(small, tmp_path):
    root = _written(small, tmp_path, "sensreader")
    assert load_scene(root, frames=np.array([4, 2])).frame_ids == (4, 2)
    assert load_scene(root, frames=torch.tensor([1, 3])).frame_ids == (1, 3)
    with pytest.raises(Vega3DError, match="must be 1-D"):
        load_scene(root, frames=np.array([[1, 2]]))
    with pytest.raises(Vega3DError, match="frame ids must be ints, got dtype"):
        load_scene(root, frames=np.array([1.0, 2.0]))


def test_unselected_frames_are_not_read(small, tmp_path):
    root = _written(small, tmp_path, "sensreader")
    (root / "color" / "00004.png").write_bytes(b"not an image")
    (root / "pose" / "00004.txt").write_text("garbage")
    assert load_scene(root, frames=[0, 1]).frame_ids == (0, 1)
    with pytest.raises(Vega3DError, match="00004"):
        load_scene(root)


@pytest.mark.parametrize(
    "frames, match",
    [
        ([0, 9], r"frame ids \[9\] not in the scan"),
        ([1, 1], "more than once"),
        ([], "empty"),
        ("0", "frames must be"),
        (True, "frames must be"),
        ([0.5], "frame ids must be ints"),
        (0, "num must be >= 1"),
    ],
)
def test_bad_frame_selection(small, tmp_path, frames, match):
    root = _written(small, tmp_path, "sensreader")
    with pytest.raises(Vega3DError, match=match):
        load_scene(root, frames=frames)


# ------------------------------------------------------------------------------------ invalid poses
def test_invalid_poses_are_kept_flagged_and_reported(small, tmp_path, caplog):
    root = _written(small, tmp_path, "sensreader")
    (root / "pose" / "00001.txt").write_text("\n".join(["-inf -inf -inf -inf"] * 4) + "\n")
    (root / "pose" / "00003.txt").write_text("nan 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    with caplog.at_level(logging.WARNING, logger="vega3d.scenes"):
        back = load_scene(root)
    assert len(back) == 5
    assert back.pose_valid.tolist() == [True, False, True, False, True]
    assert back.extras["invalid_pose_frame_ids"] == [1, 3]
    assert any("2 of 5" in r.getMessage() and "non-finite" in r.getMessage() for r in caplog.records)
    assert torch.isinf(back.poses[1]).all()  # kept as read, never replaced by a usable matrix
    assert torch.allclose(back.poses[2], small.poses[2], atol=1e-8)


# ------------------------------------------------------------------------------------ errors
def _expect(root, match, **kw):
    with pytest.raises(Vega3DError, match=match):
        load_scene(root, **kw)


def test_missing_or_unrecognised_folder(tmp_path):
    _expect(tmp_path / "nope", "scan folder does not exist")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    _expect(tmp_path / "empty", "not a scan folder")


@pytest.mark.parametrize("folder", ["color", "depth", "pose", "intrinsic"])
def test_sensreader_missing_folder(small, tmp_path, folder):
    root = _written(small, tmp_path, "sensreader")
    for f in (root / folder).iterdir():
        f.unlink()
    (root / folder).rmdir()
    _expect(root, f"{folder}: missing folder")


def test_sensreader_empty_folder(small, tmp_path):
    root = _written(small, tmp_path, "sensreader")
    for f in (root / "depth").iterdir():
        f.unlink()
    _expect(root, r"depth: no depth files")


@pytest.mark.parametrize(
    "layout, name",
    [
        ("sensreader", "intrinsic/intrinsic_color.txt"),
        ("sensreader", "intrinsic/intrinsic_depth.txt"),
        ("posed_images", "intrinsic.txt"),
    ],
)
def test_missing_intrinsics(small, tmp_path, layout, name):
    root = _written(small, tmp_path, layout)
    (root / name).unlink()
    _expect(root, f"{Path(name).name}: missing")


def test_posed_images_without_depth_intrinsics(small, two_res, tmp_path, caplog):
    root = _written(small, tmp_path, "posed_images")
    (root / "depth_intrinsic.txt").unlink()
    with caplog.at_level(logging.WARNING, logger="vega3d.scenes"):
        back = load_scene(root)  # same size: colour intrinsics used, and said so
    assert torch.equal(back.intrinsics_depth, back.intrinsics_color)
    assert back.extras["depth_intrinsics_from"] == "intrinsic.txt"
    assert any("depth_intrinsic.txt" in r.getMessage() for r in caplog.records)
    other = write_scene(two_res, tmp_path / "other", "posed_images")
    (other / "depth_intrinsic.txt").unlink()
    _expect(other, "depth_intrinsic.txt: missing depth intrinsics")


@pytest.mark.parametrize("layout", ["sensreader", "posed_images"])
@pytest.mark.parametrize("kind", ["color", "depth", "pose"])
def test_count_mismatch(small, tmp_path, layout, kind):
    root = _written(small, tmp_path, layout)
    _frame_file(root, layout, kind, 2).unlink()
    _expect(root, r"5 colour frames but 4 (depth|pose) frames|4 colour frames but 5 depth frames")


def test_mismatched_frame_ids(small, tmp_path):
    root = _written(small, tmp_path, "sensreader")
    f = root / "pose" / "00004.txt"
    f.rename(f.with_name("00007.txt"))
    _expect(root, r"frame ids differ \(only colour: \[4\]; only pose: \[7\]\)")


def test_duplicate_frame_id(small, tmp_path):
    root = _written(small, tmp_path, "sensreader")
    (root / "depth" / "3.png").write_bytes((root / "depth" / "00003.png").read_bytes())
    _expect(root, "frame 3 has two depth files")


@pytest.mark.parametrize("layout", ["sensreader", "posed_images"])
def test_unreadable_colour(small, tmp_path, layout):
    root = _written(small, tmp_path, layout)
    _frame_file(root, layout, "color", 1).write_bytes(b"\x00garbage")
    _expect(root, r"0001\.(png|jpg): cannot read image")


def test_colour_not_rgb(small, tmp_path):
    root = _written(small, tmp_path, "sensreader")
    Image.fromarray(small.color[0, :, :, 0].numpy()).save(root / "color" / "00000.png")
    _expect(root, r"00000.png: colour image must be 8-bit RGB, found mode 'L'")


@pytest.mark.parametrize("mode", ["L", "RGB", "F"])
def test_depth_not_16_bit(small, tmp_path, mode):
    root = _written(small, tmp_path, "posed_images")
    arr = {
        "L": np.zeros((32, 40), np.uint8),
        "RGB": np.zeros((32, 40, 3), np.uint8),
        "F": np.zeros((32, 40), np.float32),
    }[mode]
    path = root / "00002.png"
    Image.fromarray(arr).save(path if mode != "F" else path.with_suffix(".tiff"))
    if mode == "F":
        path.with_suffix(".tiff").replace(path)
    _expect(root, r"00002.png: depth image must be a 16-bit single-channel PNG")


def test_image_sizes_differ_between_frames(small, tmp_path):
    root = _written(small, tmp_path, "sensreader")
    Image.fromarray(np.zeros((30, 40), np.uint16)).save(root / "depth" / "00002.png")
    _expect(root, r"00002.png: depth image is 40x30, but 00000.png is 40x32")


@pytest.mark.parametrize(
    "text, match",
    [
        ("1 0 0 0\n0 1 0 0\n0 0 1 0\n", "must be a 4x4 matrix"),
        ("1 0 0\n0 1 0\n0 0 1\n", "must be a 4x4 matrix"),
        ("1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1 5\n", "must be a 4x4 matrix"),
        ("1 0 0 0\n0 one 0 0\n0 0 1 0\n0 0 0 1\n", r"must be a 4x4 matrix of numbers .*found '1 0 0 0\\n0 one"),
        ("", "must be a 4x4 matrix"),
        ("2 0 0 0\n0 2 0 0\n0 0 2 0\n0 0 0 1\n", "must be a rigid"),  # scaled: not a rotation
        ("0 0 0 0\n0 0 0 0\n0 0 0 0\n0 0 0 1\n", "must be a rigid.*singular"),
        ("1 0 0 0\n0 1 0 0\n0 0 -1 0\n0 0 0 1\n", "must be a rigid"),  # reflection (det -1)
        ("1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 1 1\n", "must be a rigid"),  # projective last row
    ],
)
def test_bad_pose_files(small, tmp_path, text, match):
    root = _written(small, tmp_path, "sensreader")
    (root / "pose" / "00002.txt").write_text(text)
    _expect(root, rf"00002.txt: pose {match}")


@pytest.mark.parametrize(
    "text, match",
    [
        ("0 0 16 0\n0 50 12 0\n0 0 1 0\n0 0 0 1\n", "pinhole matrix"),  # fx = 0
        ("50 0 16 0\n0 50 12 0\n0 0 1 0\n", "4x4 or 3x3"),
        ("50 0 16\n0 50 12\n0 0 2\n", "pinhole matrix"),
        ("50 0 nan 0\n0 50 12 0\n0 0 1 0\n0 0 0 1\n", "pinhole matrix"),
        ("50 0 500 0\n0 50 12 0\n0 0 1 0\n0 0 0 1\n", "principal point"),
    ],
)
def test_bad_intrinsics(small, tmp_path, text, match):
    root = _written(small, tmp_path, "sensreader")
    (root / "intrinsic" / "intrinsic_color.txt").write_text(text)
    _expect(root, rf"intrinsic_color.txt: colour intrinsics .*{match}")


def test_swapped_scannet_intrinsics_are_caught(two_res, tmp_path):
    root = write_scene(two_res, tmp_path / "s")
    a, b = root / "intrinsic" / "intrinsic_color.txt", root / "intrinsic" / "intrinsic_depth.txt"
    ta, tb = a.read_text(), b.read_text()
    a.write_text(tb)
    b.write_text(ta)
    _expect(root, "intrinsic_depth.txt: depth intrinsics has principal point .* outside its 32x24 image")


@pytest.mark.parametrize("text", ["0", "-5", "abc", "1000 1000", ""])
def test_bad_depth_scale(small, tmp_path, text):
    root = _written(small, tmp_path, "sensreader")
    (root / "depth_scale.txt").write_text(text)
    _expect(root, "depth_scale.txt must hold one positive number")


def test_write_scene_errors(small, tmp_path):
    with pytest.raises(Vega3DError, match="layout must be one of"):
        write_scene(small, tmp_path / "x", "colmap")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(Vega3DError, match="empty or new folder"):
        write_scene(small, tmp_path / "full")
    with pytest.raises(Vega3DError, match="does not fit uint16"):
        write_scene(small, tmp_path / "deep", depth_scale=50000.0)
    with pytest.raises(Vega3DError, match="depth_scale must be a positive"):
        write_scene(small, tmp_path / "neg", depth_scale=-1.0)
    neg = Scene(small.color, small.depth, small.poses, small.intrinsics_color, small.intrinsics_depth, (-1, 0, 1, 2, 3))
    with pytest.raises(Vega3DError, match="frame ids must be >= 0"):
        write_scene(neg, tmp_path / "ids")
    assert not (tmp_path / "deep").exists() and not (tmp_path / "ids").exists()


def test_invalid_pose_round_trips_through_write(small, tmp_path):
    poses = small.poses.clone()
    poses[2] = float("-inf")
    scene = Scene(small.color, small.depth, poses, small.intrinsics_color, small.intrinsics_depth, small.frame_ids)
    root = write_scene(scene, tmp_path / "inv", "posed_images")
    assert "-inf" in (root / "00002.txt").read_text()
    assert load_scene(root).pose_valid.tolist() == [True, True, False, True, True]


def test_intrinsics_files_use_integer_pixel_centres(small, tmp_path):
    # files (ScanNet, TUM, OpenCV) put pixel centres at integers; the Scene puts them at +0.5
    root = _written(small, tmp_path, "sensreader")
    on_disk = np.loadtxt(root / "intrinsic" / "intrinsic_color.txt")
    assert on_disk[0, 2] == pytest.approx(float(small.intrinsics_color[0, 2]) - 0.5)
    assert on_disk[1, 2] == pytest.approx(float(small.intrinsics_color[1, 2]) - 0.5)
    k = load_scene(root).intrinsics_color
    assert float(k[0, 2]) == pytest.approx(on_disk[0, 2] + 0.5) and float(k[0, 0]) == pytest.approx(on_disk[0, 0])
