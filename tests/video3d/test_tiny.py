"""The tiny dataset: released formats, accepted by vega3d's evaluators, geometrically true, deterministic."""

import json

import numpy as np
import pytest
import torch

from tests.video3d.conftest import SMALL
from vega3d.errors import Vega3DError
from vega3d.video3d import (
    Video3DData,
    box_cells,
    check_samples,
    max_coverage_record,
    read_boxes,
    read_embodiedscan_infos,
    read_samples,
    read_scene_voxels,
    read_select_frames,
    write_tiny_dataset,
)

FILES = {
    "scanrefer": ("scanrefer_vg", ("train", "val")),
    "multi3drefer": ("multi3drefer", ("train", "val")),
    "scan2cap": ("scan2cap", ("train", "val")),
    "scanqa": ("scanqa", ("train", "val")),
    "sqa3d": ("sqa3d", ("train", "val", "test")),
}


def _path(root, task, split):
    return root / "processed" / f"{FILES[task][0]}_{split}_llava_style.json"


def test_every_file_reads_back_and_cross_checks(tiny_data):
    gt = read_boxes(tiny_data / "metadata" / "scannet_train_gt_box.json")
    val_gt = read_boxes(tiny_data / "metadata" / "scannet_val_gt_box.json")
    pred = read_boxes(tiny_data / "metadata" / "scannet_val_pred_box.json")
    for task, (_, splits) in FILES.items():
        for split in splits:
            samples = read_samples(_path(tiny_data, task, split), task=task)
            assert samples, (task, split)
            if split == "train":
                check_samples(samples, proposals=gt, gt_boxes=gt)
            else:
                check_samples(samples, proposals=pred, gt_boxes=val_gt)
            for s in samples:  # annotation boxes are the GT boxes of the ids they name
                boxes = (gt if split == "train" else val_gt)[s.video]
                assert [tuple(boxes[o]) for o in s.object_ids] == list(s.boxes)
    infos = {}
    for split in ("train", "val", "test"):
        infos.update(read_embodiedscan_infos(tiny_data / "embodiedscan" / f"embodiedscan_infos_{split}.pkl"))
    assert sorted(infos) == sorted(gt) + sorted(val_gt)
    voxels = read_scene_voxels(tiny_data / "metadata" / "pcd_discrete_0.1.pkl")
    select = read_select_frames(tiny_data / "metadata" / "scannet_select_frames.json")
    assert sorted(select) == sorted(infos) and sorted(voxels) == [v.split("/")[1] for v in sorted(infos)]
    for video, rec in select.items():
        assert len(rec.frame_files) == SMALL["select_frames"]
        assert rec.frame_files[0].startswith(f"data/scannet/posed_images/{video.split('/')[1]}/")
        assert set(rec.frame_ids) <= set(infos[video].frame_ids)


def test_formats_match_the_release_field_by_field(tiny_data):
    rec = json.loads(_path(tiny_data, "scanrefer", "val").read_text())[0]
    assert set(rec) == {"id", "video", "conversations", "box", "metadata"}
    assert set(rec["metadata"]) == {"dataset", "question_type", "ann_id", "object_id"}
    assert isinstance(rec["metadata"]["object_id"], str) and isinstance(rec["id"], int)
    assert rec["conversations"][0]["value"].startswith(
        "<image>Identify the object according to the following description.\n"
    )
    m3 = json.loads(_path(tiny_data, "multi3drefer", "val").read_text())
    assert {r["metadata"]["question_type"] for r in m3} <= {"zt_wo_d", "zt_w_d", "st_wo_d", "st_w_d", "mt"}
    assert all(isinstance(o, int) for r in m3 for o in r["metadata"]["object_id"])
    cap = json.loads(_path(tiny_data, "scan2cap", "val").read_text())
    assert all(
        set(r) == {"id", "video", "conversations", "box_input", "gt_box", "metadata", "annotations"} for r in cap
    )
    assert any(r["box_input"] is None for r in cap)  # one object per val scene has no proposal
    train_cap = json.loads(_path(tiny_data, "scan2cap", "train").read_text())
    assert all(r["box_input"] == r["gt_box"] and "annotations" not in r for r in train_cap)
    qa_val = json.loads(_path(tiny_data, "scanqa", "val").read_text())
    assert all(r["id"].startswith("scanqa_val-scene") and r["id"].endswith("_0") for r in qa_val)
    sqa_train = json.loads(_path(tiny_data, "sqa3d", "train").read_text())
    ids = [r["id"] for r in sqa_train]
    assert len(ids) == 2 * len(set(ids))  # train: the alternative situation, then the main one
    pkl = read_embodiedscan_infos(tiny_data / "embodiedscan" / "embodiedscan_infos_test.pkl")
    assert pkl == {}


def test_perfect_predictions_score_100_with_vega3d_eval(tiny_data, no_meteor):
    from vega3d.eval import multi3drefer, scan2cap, scanqa, scanrefer, sqa3d

    def records(task, split="val"):
        return json.loads(_path(tiny_data, task, split).read_text())

    r = scanrefer.evaluate(
        {str(x["id"]): {"box": x["box"]} for x in records("scanrefer")}, _path(tiny_data, "scanrefer", "val")
    )
    assert r["acc@0.25"] == r["acc@0.5"] == 1.0 and r["counts"]["per_split"]["unique"] > 0
    r = multi3drefer.evaluate(
        {str(x["id"]): {"boxes": x["box"]} for x in records("multi3drefer")}, _path(tiny_data, "multi3drefer", "val")
    )
    assert r["f1@0.25"] == r["f1@0.5"] == 1.0
    assert r["counts"]["per_sub_split"]["zt_wo_d"] > 0 and r["counts"]["per_sub_split"]["mt"] > 0
    for split in ("val", "test"):
        preds = {str(x["id"]): {"prediction": x["conversations"][1]["value"]} for x in records("sqa3d", split)}
        assert sqa3d.evaluate(preds, _path(tiny_data, "sqa3d", split))["em"] == 1.0
    preds = {x["id"]: {"prediction": x["metadata"]["answers"][0]} for x in records("scanqa")}
    r = scanqa.evaluate(preds, _path(tiny_data, "scanqa", "val"))
    assert r["em"] == 1.0 and r["bleu1"] == pytest.approx(1.0)
    caps = records("scan2cap")
    preds = {str(x["id"]): {"prediction": x["annotations"][0], "box": x["gt_box"]} for x in caps}
    r = scan2cap.evaluate(preds, _path(tiny_data, "scan2cap", "val"))
    assert r["counts"]["detected@0.5"] == len(caps) and r["rouge_l"] == pytest.approx(1.0)
    preds = {str(x["id"]): {"prediction": x["annotations"][0]} for x in caps}  # the proposals of box_input
    r = scan2cap.evaluate(preds, _path(tiny_data, "scan2cap", "val"))
    assert r["counts"]["detected@0.5"] == sum(x["box_input"] is not None for x in caps) < len(caps)


def test_world_coordinates_land_in_the_room_and_objects_are_seen(tiny_data):
    """The chain unaligned pose files + axis alignment -> aligned world is right: every depth pixel
    maps inside the room (holes: the camera centre, also inside), and GT boxes select cells."""
    data = Video3DData(tiny_data)
    gt = read_boxes(tiny_data / "metadata" / "scannet_train_gt_box.json")["scannet/scene0000_00"]
    frames = data.choose_frames("scannet/scene0000_00", 6)
    inputs = data.load("scannet/scene0000_00", frames, split="train")
    assert torch.equal(inputs.proposals, torch.as_tensor(gt, dtype=torch.float32))
    meta = json.loads((tiny_data / "tiny_dataset.json").read_text())
    assert meta["config"]["seed"] == SMALL["seed"]
    pts = inputs.world.reshape(-1, 3).double()
    room = np.abs(pts[:, :2].numpy()).max(0)
    assert (room < 3.3).all() and float(pts[:, 2].min()) > -0.01 and float(pts[:, 2].max()) < 3.0
    cells = box_cells(inputs.world, inputs.proposals)
    assert cells.shape == (len(gt), 6, 27, 27)
    assert int(cells.flatten(1).any(1).sum()) >= len(gt) - 1  # (almost) every object is visible somewhere
    center = data.load("scannet/scene0000_00", frames[:1], strategy="center_crop").world
    assert center.shape == (1, 384, 384, 3)


def test_select_frames_file_is_what_max_coverage_gives_on_the_written_files(tiny_data):
    infos = read_embodiedscan_infos(tiny_data / "embodiedscan" / "embodiedscan_infos_val.pkl")
    voxels = read_scene_voxels(tiny_data / "metadata" / "pcd_discrete_0.1.pkl")
    select = read_select_frames(tiny_data / "metadata" / "scannet_select_frames.json")
    info = infos["scannet/scene0001_00"]
    again = max_coverage_record(
        tiny_data / "scannet" / "posed_images" / "scene0001_00",
        frame_ids=info.frame_ids,
        axis_align=info.axis_align,
        depth_intrinsics=info.depth_intrinsics,
        scene_voxels=voxels["scene0001_00"],
        max_frames=SMALL["select_frames"],
        seed=SMALL["seed"],
    )
    assert again == select["scannet/scene0001_00"]
    assert 0 < again.num_select_voxels <= again.num_all_voxels and again.voxel_nums[0] >= again.voxel_nums[-1]


def test_same_seed_same_bytes_and_refuses_a_full_folder(tmp_path, tiny_data):
    small = {**SMALL, "num_frames": 4, "select_frames": 2}
    a = write_tiny_dataset(tmp_path / "a", small)
    b = write_tiny_dataset(tmp_path / "b", small)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)
    with pytest.raises(Vega3DError, match="new or empty folder"):
        write_tiny_dataset(a, small)
    with pytest.raises(Vega3DError, match="num_frames"):
        write_tiny_dataset(tmp_path / "c", {"num_frames": 1})
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob(".tmp-*"))
