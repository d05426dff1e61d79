"""Readers of the released formats (issue 9 item 7) and their one-line errors on bad input."""

import copy
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from vega3d.errors import Vega3DError
from vega3d.video3d import (
    Video3DData,
    check_samples,
    read_boxes,
    read_embodiedscan_infos,
    read_posed_frames,
    read_samples,
    read_scene_voxels,
    read_select_frames,
)

FIXTURES = Path(__file__).resolve().parents[1] / "eval" / "fixtures"
SCANREFER = {
    "id": 7,
    "video": "scannet/scene0011_00",
    "conversations": [
        {"value": "<image>Identify the object according to the following description.\nThe sofa.", "from": "human"},
        {"value": "<ground>", "from": "gpt"},
    ],
    "box": [1, 1, 1, 2, 2, 2],
    "metadata": {"dataset": "scanrefer", "question_type": "unique", "ann_id": "0", "object_id": "3"},
}


def _write(tmp_path, records, name="x_llava_style.json"):
    path = tmp_path / name
    path.write_text(json.dumps(records))
    return path


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    "name, task, count",
    [
        ("scanrefer_val_llava_style.json", "scanrefer", 4),
        ("multi3drefer_val_llava_style.json", "multi3drefer", 5),
        ("scan2cap_val_llava_style.json", "scan2cap", 3),
        ("scanqa_val_llava_style.json", "scanqa", 5),
        ("sqa3d_test_llava_style.json", "sqa3d", 6),
    ],
)
def test_the_real_format_examples_parse(name, task, count):
    samples = read_samples(FIXTURES / name, task=task)
    assert len(samples) == count and {s.task for s in samples} == {task}
    s = samples[0]
    assert s.scene.startswith("scene") and "<image>" in s.question
    if task == "scanrefer":
        assert len(s.object_ids) == len(s.boxes) == 1 and s.answer == "<ground>"
    if task == "multi3drefer":
        assert all(len(x.object_ids) == len(x.boxes) for x in samples)
        assert any(not x.object_ids for x in samples)  # zero-target queries
    if task == "scan2cap":
        assert s.box_input is not None and len(s.answers) >= 1 and "<coord>" in s.question
    if task == "scanqa":
        assert s.answers == tuple(json.loads((FIXTURES / name).read_text())[0]["metadata"]["answers"])


def test_sample_fields_by_hand(tmp_path):
    (s,) = read_samples(_write(tmp_path, [SCANREFER]))
    assert (s.task, s.id, s.scene, s.object_ids, s.boxes, s.box_input) == (
        "scanrefer", 7, "scene0011_00", (3,), ((1.0, 1.0, 1.0, 2.0, 2.0, 2.0),), None
    )  # fmt: skip


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r["box"].__setitem__(4, 0), "zero-size box"),
        (lambda r: r["metadata"].__setitem__("object_id", "x3"), "object id"),
        (lambda r: r["conversations"][1].__setitem__("value", "the sofa"), "<ground>"),
        (lambda r: r["conversations"][0].__setitem__("value", "no image"), "'<image>' once"),
        (lambda r: r["metadata"].__setitem__("dataset", "nr3d"), "metadata.dataset"),
        (lambda r: r["metadata"].__setitem__("question_type", "both"), "question_type"),
        (lambda r: r.pop("video"), "missing field 'video'"),
        (lambda r: r.__setitem__("conversations", []), "conversations"),
        (lambda r: r["box"].__setitem__(0, float("nan")), "non-finite"),
    ],
)
def test_bad_records_name_file_and_record(tmp_path, change, message):
    good = copy.deepcopy(SCANREFER)
    bad = copy.deepcopy(SCANREFER)
    change(bad)
    path = _write(tmp_path, [good, bad])
    with pytest.raises(Vega3DError) as err:
        read_samples(path)
    text = one_line(err)
    assert message in text and str(path) in text and "record 1" in text


def test_task_mismatch_and_multi3drefer_checks(tmp_path):
    with pytest.raises(Vega3DError, match="'scanQA' file"):
        read_samples(_write(tmp_path, [SCANREFER]), task="scanqa")
    m3 = json.loads((FIXTURES / "multi3drefer_val_llava_style.json").read_text())
    target = next(r for r in m3 if r["box"])
    target["metadata"]["object_id"] = target["metadata"]["object_id"][:-1]
    with pytest.raises(Vega3DError, match="boxes but"):
        read_samples(_write(tmp_path, [target]))


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda r: r.__setitem__("id", True),
            "id: input should be a valid integer or input should be a valid string, got True",
        ),
        (lambda r: r.__setitem__("box", [1, 2, 3]), "box: expected a box of 6 numbers"),
        (lambda r: r["metadata"].pop("object_id"), "metadata.object_id: required, missing"),
        (lambda r: r["conversations"].reverse(), "conversations must start with the human, then the gpt turn"),
        (lambda r: r.__setitem__("video", "scannet/"), "'video' must name a scan"),
    ],
)
def test_record_shapes_are_declared_one_line_errors(tmp_path, change, message):
    bad = copy.deepcopy(SCANREFER)
    change(bad)
    path = _write(tmp_path, [bad])
    with pytest.raises(Vega3DError) as err:
        read_samples(path)
    assert message in one_line(err) and f"{path} record 0" in str(err.value)


def test_boxes_file_and_cross_checks(tmp_path):
    path = tmp_path / "scannet_val_pred_box.json"
    path.write_text(json.dumps({"scannet/scene0011_00": [[0, 0, 0, 1, 1, 1], [1, 1, 1, 2, 2, 2]]}))
    boxes = read_boxes(path)
    assert boxes["scannet/scene0011_00"].shape == (2, 6)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"scannet/scene0011_00": [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 0, 1]]}))
    with pytest.raises(Vega3DError) as err:
        read_boxes(bad)
    assert "zero-size box" in one_line(err) and "box 1" in str(err.value) and str(bad) in str(err.value)
    samples = read_samples(_write(tmp_path, [SCANREFER]))
    check_samples(samples, proposals=boxes, gt_boxes={"scannet/scene0011_00": np.zeros((4, 6))})
    with pytest.raises(Vega3DError) as err:
        check_samples(samples, proposals={"scannet/scene0000_00": np.zeros((1, 6))}, proposals_file=str(path))
    assert "missing from" in one_line(err) and str(path) in str(err.value) and "record 0" in str(err.value)
    with pytest.raises(Vega3DError) as err:
        check_samples(samples, gt_boxes={"scannet/scene0011_00": np.zeros((3, 6))}, gt_file="gt.json")
    assert "object id(s) [3]" in one_line(err) and "gt.json has 3 boxes" in str(err.value)


def _select(tmp_path, **change):
    rec = {
        "video_id": "scannet/scene0000_00",
        "frame_files": [
            "data/scannet/posed_images/scene0000_00/00020.jpg",
            "data/scannet/posed_images/scene0000_00/00000.jpg",
        ],
        "voxel_nums": [10, 5],
        "num_all_voxels": 20,
        "num_select_voxels": 15,
    }
    rec.update(change)
    path = tmp_path / "scannet_select_frames.json"
    path.write_text(json.dumps([rec]))
    return path


def test_select_frames_file(tmp_path):
    (rec,) = read_select_frames(_select(tmp_path)).values()
    assert rec.frame_ids == [20, 0] and rec.num_all_voxels == 20
    for change, message in [
        ({"voxel_nums": [10]}, "one per frame"),
        ({"num_select_voxels": 14}, "sum(voxel_nums)"),
        ({"frame_files": ["a/scene0001_00/00000.jpg", "a/scene0000_00/00010.jpg"]}, "not in the scene's folder"),
        ({"frame_files": ["a/scene0000_00/00000.jpg", "b/scene0000_00/00000.jpg"]}, "listed twice"),
        ({"frame_files": ["a/scene0000_00/first.jpg", "a/scene0000_00/00010.jpg"]}, "<digits>.jpg"),
    ]:
        with pytest.raises(Vega3DError) as err:
            read_select_frames(_select(tmp_path, **change))
        assert message in one_line(err) and "record 0" in str(err.value)


def test_select_frames_and_infos_fields_are_declared(tmp_path):
    with pytest.raises(Vega3DError) as err:
        read_select_frames(_select(tmp_path, voxel_nums=[10, -5]))
    assert "record 0: voxel_nums.1: input should be greater than or equal to 0, got -5" in one_line(err)
    infos = tmp_path / "embodiedscan_infos_val.pkl"
    item = {"sample_idx": "scannet/scene0000_00", "axis_align_matrix": np.eye(3), "images": []}
    infos.write_bytes(pickle.dumps({"data_list": [item]}))
    with pytest.raises(Vega3DError) as err:
        read_embodiedscan_infos(infos)
    assert "data_list[0] (scannet/scene0000_00): axis_align_matrix: expected a finite (4, 4) matrix" in one_line(err)
    infos.write_bytes(pickle.dumps({"data_list": [{"sample_idx": 3}]}))
    with pytest.raises(Vega3DError, match="data_list.0.sample_idx: input should be a valid string, got 3"):
        read_embodiedscan_infos(infos)


def test_pickles_are_read_without_running_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"scene0000_00": Evil()}))
    with pytest.raises(Vega3DError, match="refusing"):
        read_scene_voxels(path)
    assert (tmp_path / "victim").is_dir()
    good = tmp_path / "pcd_discrete_0.1.pkl"
    good.write_bytes(pickle.dumps({"scene0000_00": [(1, 2, 3), (-4, 5, 6)]}))
    assert read_scene_voxels(good)["scene0000_00"].tolist() == [[1, 2, 3], [-4, 5, 6]]
    infos = tmp_path / "embodiedscan_infos_val.pkl"
    k = np.array([[577.6, 0, 319.5, 0], [0, 578.7, 239.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float32)
    item = {"sample_idx": "scannet/scene0000_00", "axis_align_matrix": np.eye(4), "depth_cam2img": k,
            "images": [{"img_path": "scannet/posed_images/scene0000_00/00010.jpg"}]}  # fmt: skip
    infos.write_bytes(pickle.dumps({"data_list": [item, {"sample_idx": "3rscan/x"}]}))
    (info,) = read_embodiedscan_infos(infos).values()
    assert info.frame_ids == (10,) and info.depth_intrinsics[0, 2] == pytest.approx(320.0)


# ---------------------------------------------------------------------------- posed images
def test_posed_frames_bad_input_names_the_file(tiny_data, tmp_path):
    src = tiny_data / "scannet" / "posed_images" / "scene0000_00"
    scan = tmp_path / "scene0000_00"
    shutil.copytree(src, scan)
    frames = read_posed_frames(scan, [0, 10], color=True)
    assert frames.depth.shape[0] == 2 and frames.color.dtype.is_floating_point is False
    assert frames.axis_align is not None
    (scan / "00030.txt").unlink()
    with pytest.raises(Vega3DError, match="00030.txt: frame 30 has no pose file"):
        read_posed_frames(scan, [30], color=False)
    (scan / "00010.png").unlink()
    with pytest.raises(Vega3DError) as err:
        read_posed_frames(scan, [0, 10])
    assert "00010.png" in one_line(err) and "no depth file" in str(err.value)
    (scan / "00020.txt").write_text("-inf -inf -inf -inf\n" * 4)
    with pytest.raises(Vega3DError) as err:
        read_posed_frames(scan, [20], color=False)
    assert "00020.txt" in one_line(err) and "not finite" in str(err.value)
    (scan / "depth_intrinsic.txt").unlink()
    with pytest.raises(Vega3DError, match="depth_intrinsic.txt: missing depth intrinsics"):
        read_posed_frames(scan, [0], color=False)


def test_data_root_frames_and_missing_scenes(tiny_data, tmp_path):
    data = Video3DData(tiny_data)
    ids = data.frame_ids("scannet/scene0000_00")
    assert ids == [10 * i for i in range(12)]
    assert data.choose_frames("scannet/scene0000_00", 4) == [0, 30, 70, 110]
    with pytest.raises(Vega3DError, match="13 frames requested but the scan has only 12"):
        data.choose_frames("scannet/scene0000_00", 13)
    mc = data.choose_frames("scannet/scene0001_00", 32, "mc-ratio90")
    assert mc == sorted(mc) and set(mc) <= set(ids)
    only = tmp_path / "select.json"
    only.write_text(json.dumps(json.loads((tiny_data / "metadata" / "scannet_select_frames.json").read_text())[:1]))
    with pytest.raises(Vega3DError, match="scene0001_00' is missing from the frame-selection file"):
        Video3DData(tiny_data, select_frames=only).choose_frames("scannet/scene0001_00", 8, "mc")
    with pytest.raises(Vega3DError, match="scan folder of 'scannet/scene0099_00' does not exist"):
        data.choose_frames("scannet/scene0099_00", 8)
    with pytest.raises(Vega3DError, match="missing from the proposals file"):
        data.proposals("scannet/scene0000_00", "val")
    inputs = data.load("scannet/scene0001_00", mc[:2], split="val")
    assert inputs.world.shape == (2, 384, 384, 3) and inputs.color.shape[0] == 2
    assert inputs.proposals.shape[1] == 6


def test_record_errors_name_the_record_id(tmp_path):
    bad = copy.deepcopy(SCANREFER) | {"id": 12}
    bad["metadata"]["object_id"] = "x3"
    path = _write(tmp_path, [bad])
    with pytest.raises(Vega3DError) as err:
        read_samples(path)
    assert f"{path} record 0 (id 12): metadata.object_id" in one_line(err)
    bad["metadata"]["object_id"] = "3"
    bad["conversations"].reverse()
    with pytest.raises(Vega3DError) as err:
        read_samples(_write(tmp_path, [bad]))
    assert f"{path} record 0 (id 12): conversations must start" in one_line(err)


def test_records_built_directly_are_one_line_errors():
    from vega3d.video3d.formats import _Turn

    with pytest.raises(Vega3DError, match="value: input should be a valid string, got 3"):
        _Turn(**{"from": "human", "value": 3})
