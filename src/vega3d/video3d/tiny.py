"""A tiny Video-3D LLM dataset in exactly the released formats, from synthetic scenes.

:func:`write_tiny_dataset` renders a few synthetic rooms (:func:`vega3d.scenes.synthetic_scene`)
and writes, under one folder laid out like the release's ``data/`` (docs/video3d.md):

- ``scannet/posed_images/<scene>/``: ``NNNNN.jpg`` colour, ``NNNNN.png`` uint16 depth (mm, with
  ~2% zero "no reading" pixels), ``NNNNN.txt`` camera-to-world in an *unaligned* world,
  ``intrinsic.txt``, ``depth_intrinsic.txt`` (colour and depth differ in size, like ScanNet), and
  ``axis_align_matrix.txt`` (a vega3d convenience; the release reads the EmbodiedScan infos);
- ``embodiedscan/embodiedscan_infos_{train,val,test}.pkl``: axis alignment, depth intrinsics and
  frame list per scan (the keys the release reads);
- ``metadata/``: ``scannet_train_gt_box.json``, ``scannet_val_gt_box.json``,
  ``scannet_val_pred_box.json`` ("Mask3D" proposals = GT boxes with noise, one object missed per
  val scene, a false positive, shuffled), ``pcd_discrete_0.1.pkl`` (voxels of points sampled on
  every surface) and ``scannet_select_frames.json`` (maximum coverage over the written files);
- ``processed/``: ``scanrefer_vg``, ``multi3drefer``, ``scan2cap``, ``scanqa`` (train, val) and
  ``sqa3d`` (train, val, test) ``_llava_style.json`` with the release's templates; descriptions,
  questions and answers are generated from the known geometry, so they are true;
- ``tiny_dataset.json``: the config that produced it and every object (id, label, box).

Objects are the synthetic boxes (labels cabinet / table / chair / box) and spheres (ball / lamp)
with axis-aligned boxes in the aligned scene frame; object id = position in the scene's GT box
list. Deterministic for a config (same seed → byte-identical files).
"""

from __future__ import annotations

import math
import os
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from vega3d.config import Config, parse
from vega3d.errors import Vega3DError
from vega3d.files import write_json
from vega3d.scenes import synthetic_scene, write_scene
from vega3d.video3d.data import max_coverage_record
from vega3d.video3d.formats import write_select_frames
from vega3d.video3d.geometry import best_proposal

BOX_LABELS = ("cabinet", "table", "chair", "box")
SPHERE_LABELS = ("ball", "lamp")
ABSENT_LABELS = ("piano", "bathtub", "refrigerator", "toilet")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SCANREFER_TEMPLATE = "<image>Identify the object according to the following description.\n{desc}"
MULTI3DREFER_TEMPLATE = (
    "<image>Identify the object according to the following description.\n{desc}\n"
    "There may be no corresponding object, or there may be one or more objects."
)
SCAN2CAP_QUESTION = "<image> Given an object located at <coord> , describe the object in detail."
SCANQA_TEMPLATE = "<image> {question} Answer the question simply."
SQA3D_TEMPLATE = "<image> {situation} {question} Answer the question using a single word or phrase."
SQA3D_FIRST_ID = 220602000000


class TinyDatasetConfig(Config):
    """Options of :func:`write_tiny_dataset` (recorded in ``tiny_dataset.json``)."""

    seed: int = Field(0, ge=0)  # every random choice (rooms, labels, alignment, proposals, tie-breaks) follows it
    train_scenes: int = Field(2, ge=1)  # scans scene0000_00 ... of the train split
    val_scenes: int = Field(2, ge=1)  # the scans after them: the val split (and SQA3D test)
    num_frames: int = Field(40, ge=2)  # frames per scan (named 00000, 00010, ... like EmbodiedScan's every-10th list)
    height: int = Field(96, ge=16)  # colour image size
    width: int = Field(128, ge=16)
    depth_height: int = Field(60, ge=8)  # depth image size (ScanNet: smaller than colour)
    depth_width: int = Field(80, ge=8)
    hole_fraction: float = Field(0.02, ge=0, lt=1)  # depth pixels set to 0 (no reading)
    arc_degrees: float = Field(300.0, ge=10, le=360)  # camera path around the room
    select_frames: int = Field(32, ge=1)  # maximum-coverage picks per scan (the release: 32)


# ---------------------------------------------------------------------------- scene content
def _objects(scene, rng: np.random.Generator) -> list[dict]:
    """Objects of a synthetic scene: id, kind, label, box [cx, cy, cz, dx, dy, dz] (aligned frame)."""
    found = scene.extras["objects"]
    out = []
    for b in found["boxes"]:
        lo, hi = np.asarray(b["lo"]), np.asarray(b["hi"])
        out.append({"kind": "box", "box": [*((lo + hi) / 2), *(hi - lo)], "label": BOX_LABELS[rng.integers(3)]})
    for s in found["spheres"]:
        c, r = np.asarray(s["center"]), float(s["radius"])
        out.append({"kind": "sphere", "box": [*c, 2 * r, 2 * r, 2 * r], "label": SPHERE_LABELS[rng.integers(2)]})
    for i, o in enumerate(out):
        o["id"] = i
        o["box"] = [round(float(v), 6) for v in o["box"]]
    return out


def _surface_points(objects: dict, spacing: float = 0.05) -> np.ndarray:
    """Points (M, 3) on every surface of the synthetic room: walls, floor, ceiling, boxes (not their
    bottom), spheres — the stand-in for ScanNet's reconstructed point cloud."""
    pts = []

    def plane(lo, hi, axis, value):
        a, b = [i for i in range(3) if i != axis]
        ua = np.arange(lo[a], hi[a] + 1e-9, spacing)
        ub = np.arange(lo[b], hi[b] + 1e-9, spacing)
        ga, gb = np.meshgrid(ua, ub, indexing="ij")
        p = np.zeros((ga.size, 3))
        p[:, a], p[:, b], p[:, axis] = ga.ravel(), gb.ravel(), value
        pts.append(p)

    lo, hi = np.asarray(objects["room_lo"]), np.asarray(objects["room_hi"])
    for axis in range(3):
        plane(lo, hi, axis, lo[axis])
        plane(lo, hi, axis, hi[axis])
    for b in objects["boxes"]:
        blo, bhi = np.asarray(b["lo"]), np.asarray(b["hi"])
        for axis in range(3):
            if axis != 2:
                plane(blo, bhi, axis, blo[axis])
            plane(blo, bhi, axis, bhi[axis])
    for s in objects["spheres"]:
        c, r = np.asarray(s["center"]), float(s["radius"])
        n = max(16, int(4 * math.pi * r * r / spacing**2))
        k = np.arange(n) + 0.5
        phi = np.arccos(1 - 2 * k / n)
        theta = math.pi * (1 + 5**0.5) * k
        pts.append(c + r * np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1))
    return np.concatenate(pts)


def _axis_align(rng: np.random.Generator) -> np.ndarray:
    """A ScanNet-like alignment (raw world → aligned world): a turn about z and a shift."""
    a = rng.uniform(0, 2 * math.pi)
    m = np.eye(4)
    m[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    m[:2, 3] = rng.uniform(-3, 3, 2)
    return np.round(m, 9)


def _proposals(objects: list[dict], room: dict, rng: np.random.Generator) -> list[list[float]]:
    """'Predicted' boxes: each GT box jittered (centre ~3 cm, size ~5%) except one missed object,
    plus one false positive in the room; shuffled."""
    missed = int(rng.integers(len(objects)))
    boxes = []
    for o in objects:
        if o["id"] == missed:
            continue
        c, d = np.asarray(o["box"][:3]), np.asarray(o["box"][3:])
        c = c + rng.normal(0, 0.03, 3)
        d = d * np.exp(rng.normal(0, 0.05, 3))
        boxes.append([*c, *d])
    lo, hi = np.asarray(room["room_lo"]), np.asarray(room["room_hi"])
    d = rng.uniform(0.2, 0.5, 3)
    boxes.append([*rng.uniform(lo + d, hi - d), *d])
    order = rng.permutation(len(boxes))
    return [[round(float(v), 6) for v in boxes[i]] for i in order]


# ---------------------------------------------------------------------------- language
def _walls(box, room) -> str:
    c = np.asarray(box[:3])
    lo, hi = np.asarray(room["room_lo"]), np.asarray(room["room_hi"])
    dist = {"east": hi[0] - c[0], "west": c[0] - lo[0], "north": hi[1] - c[1], "south": c[1] - lo[1]}
    return min(dist, key=dist.get)


def _nearest(o, objects) -> dict:
    others = [p for p in objects if p["id"] != o["id"]]
    return min(others, key=lambda p: (np.linalg.norm(np.subtract(p["box"][:3], o["box"][:3])), p["id"]))


def _top(o) -> float:
    return o["box"][2] + o["box"][5] / 2


def _descriptions(o, objects, room) -> list[str]:
    """Two ScanRefer-style descriptions (lower case, as the raw ScanRefer text) true of ``o``."""
    nb = _nearest(o, objects)
    wall = _walls(o["box"], room)
    same = [p for p in objects if p["label"] == o["label"] and p["id"] != o["id"]]
    which = f"the {o['label']} closest to the {wall} wall" if not same else f"one of {len(same) + 1} {o['label']}s"
    taller = "taller" if _top(o) > _top(nb) else "shorter"
    return [
        f"this is a {o['label']}. it is {which}.",
        f"the {o['label']} is next to the {nb['label']}. it is {taller} than the {nb['label']}.",
    ]


def _unique_wall_pick(label: str, objects, room) -> tuple[dict, str] | None:
    """An object of ``label`` that is the only one of its label nearest to some wall (for st_w_d)."""
    group = [o for o in objects if o["label"] == label]
    for wall in ("east", "west", "north", "south"):
        lo, hi = np.asarray(room["room_lo"]), np.asarray(room["room_hi"])
        axis, side = {"east": (0, hi[0]), "west": (0, lo[0]), "north": (1, hi[1]), "south": (1, lo[1])}[wall]
        dists = sorted((abs(side - o["box"][axis]), o["id"]) for o in group)
        if len(dists) > 1 and dists[1][0] - dists[0][0] > 0.1:
            return next(o for o in group if o["id"] == dists[0][1]), wall
    return None


def _scene_texts(scene_id: str, objects, room) -> dict:
    """All task items of one scene (before ids): lists of dicts per task."""
    video = f"scannet/{scene_id}"
    labels = sorted({o["label"] for o in objects})
    count = {lab: sum(o["label"] == lab for o in objects) for lab in labels}
    absent = [lab for lab in ABSENT_LABELS if lab not in labels]
    tallest = max(objects, key=lambda o: (_top(o), -o["id"]))
    items = {"scanrefer": [], "multi3drefer": [], "scan2cap": [], "scanqa": [], "sqa3d": []}
    for o in objects:
        descs = _descriptions(o, objects, room)
        qtype = "unique" if count[o["label"]] == 1 else "multiple"
        for ann, desc in enumerate(descs):
            items["scanrefer"].append({"video": video, "desc": desc, "box": o["box"], "qtype": qtype,
                                       "ann_id": str(ann), "object_id": str(o["id"]), "label": o["label"]})  # fmt: skip
        items["scan2cap"].append({"video": video, "descs": descs, "object": o, "qtype": qtype})
    m3 = items["multi3drefer"]
    for lab in labels:
        group = [o for o in objects if o["label"] == lab]
        if len(group) == 1:
            m3.append({"desc": f"the {lab} in the room.", "targets": group, "qtype": "st_wo_d"})
        else:
            m3.append({"desc": f"all the {lab}s in the room.", "targets": group, "qtype": "mt"})
            pick = _unique_wall_pick(lab, objects, room)
            if pick is not None:
                m3.append(
                    {"desc": f"the {lab} closest to the {pick[1]} wall.", "targets": [pick[0]], "qtype": "st_w_d"}
                )
    m3.append({"desc": f"the {absent[0]} in the room.", "targets": [], "qtype": "zt_wo_d"})
    m3.append({"desc": f"the {labels[0]} hanging from the ceiling.", "targets": [], "qtype": "zt_w_d"})
    for q in m3:
        q["video"] = video
    qa = items["scanqa"]
    for lab in labels:
        n = count[lab]
        qa.append({"question": f"How many {lab}s are in the room?", "answers": [NUMBER_WORDS[n], str(n)]})
    for o in objects:
        if count[o["label"]] == 1:
            nb = _nearest(o, objects)
            qa.append({"question": f"What is next to the {o['label']}?", "answers": [nb["label"], f"a {nb['label']}"]})
    qa.append({"question": "What is the tallest object in the room?", "answers": [tallest["label"]]})
    for q in qa:
        q["video"] = video
    sqa = items["sqa3d"]
    for o in objects[:2]:
        situations = [f"I am standing next to the {o['label']}.", f"I am standing beside the {o['label']}."]
        nearest = _nearest(o, objects)
        questions = [
            (f"Which object is closest to the {o['label']} next to me?", nearest["label"]),
            (f"How many {labels[0]}s are in the room?", NUMBER_WORDS[count[labels[0]]]),
            (f"Is there a {absent[1]} in the room?", "no"),
            (f"Is there a {labels[-1]} in the room?", "yes"),
            ("What is the tallest object in the room?", tallest["label"]),
        ]
        for question, answer in questions:
            sqa.append({"video": video, "situations": situations, "question": question, "answer": answer})
    return items


def _sqa_type(question: str) -> str:
    text = question.lstrip().lower()
    for prefix in ("what", "is", "how", "can", "which"):
        if text.startswith(prefix):
            return prefix
    return "others"


def _human_gpt(human: str, gpt: str) -> list[dict]:
    return [{"value": human, "from": "human"}, {"value": gpt, "from": "gpt"}]


def _records(split: str, scene_items: list[dict], proposals: dict | None, sqa_next: list[int]) -> dict:
    """The llava-style records of one split, ids as the release's processing scripts give them."""

    def of(task):
        return (i for s in scene_items for i in s[task])

    return {"scanrefer": _scanrefer_records(of("scanrefer")), "multi3drefer": _multi3drefer_records(of("multi3drefer")),
            "scan2cap": _scan2cap_records(split, of("scan2cap"), proposals),
            "scanqa": _scanqa_records(split, of("scanqa")), "sqa3d": _sqa3d_records(split, of("sqa3d"), sqa_next)}  # fmt: skip


def _scanrefer_records(items) -> list[dict]:
    return [{
        "id": n, "video": it["video"],
        "conversations": _human_gpt(SCANREFER_TEMPLATE.format(desc=it["desc"].capitalize()), "<ground>"),
        "box": it["box"],
        "metadata": {"dataset": "scanrefer", "question_type": it["qtype"], "ann_id": it["ann_id"],
                     "object_id": it["object_id"]},
    } for n, it in enumerate(items)]  # fmt: skip


def _multi3drefer_records(items) -> list[dict]:
    return [{
        "id": n, "video": it["video"],
        "conversations": _human_gpt(MULTI3DREFER_TEMPLATE.format(desc=it["desc"].capitalize()), "<ground>"),
        "box": [o["box"] for o in it["targets"]],
        "metadata": {"dataset": "multi3drefer", "question_type": it["qtype"], "ann_id": 0,
                     "object_id": [o["id"] for o in it["targets"]]},
    } for n, it in enumerate(items)]  # fmt: skip


def _scan2cap_records(split: str, items, proposals: dict | None) -> list[dict]:
    """Train: one record per description, the GT box as ``box_input``; val: the first description
    (``annotations``: all), the best proposal (:func:`best_proposal`) as ``box_input``."""
    out = []
    raw = 0  # Scan2Cap ids are positions in the raw ScanRefer list (val keeps one per object)
    for it in items:
        o = it["object"]
        box_input = o["box"] if split == "train" else best_proposal(proposals[it["video"]], o["box"])
        for ann, desc in enumerate(it["descs"]):
            if split != "train" and ann > 0:
                raw += 1
                continue
            rec = {
                "id": raw, "video": it["video"],
                "conversations": _human_gpt(SCAN2CAP_QUESTION, desc.capitalize()),
                "box_input": box_input, "gt_box": o["box"],
                "metadata": {"dataset": "scan2cap", "question_type": it["qtype"], "ann_id": str(ann),
                             "object_id": str(o["id"])},
            }  # fmt: skip
            if split != "train":
                rec["annotations"] = list(it["descs"])
            out.append(rec)
            raw += 1
    return out


def _scanqa_records(split: str, items) -> list[dict]:
    """Train: one record per answer; val: one per question (``metadata.answers``: all)."""
    out = []
    for n, it in enumerate(items):
        scene_short = it["video"].rsplit("/", 1)[-1].split("_")[0]
        qid = f"{split}-{scene_short}-{n}"
        answers = it["answers"] if split == "train" else it["answers"][:1]
        for idx, answer in enumerate(answers):
            rec = {
                "id": f"scanqa_{qid}_{idx}", "video": it["video"],
                "conversations": _human_gpt(SCANQA_TEMPLATE.format(question=it["question"]), answer),
                "metadata": {"dataset": "scanQA", "question_type": "unknow"},
            }  # fmt: skip
            if split != "train":
                rec["metadata"]["answers"] = list(it["answers"])
            out.append(rec)
    return out


def _sqa3d_records(split: str, items, sqa_next: list[int]) -> list[dict]:
    """Ids from ``sqa_next`` (shared by the splits); train: the alternative situation(s), then the
    main one; val: the main one."""
    out = []
    for it in items:
        qid = sqa_next[0]
        sqa_next[0] += 1
        situations = it["situations"][::-1] if split == "train" else it["situations"][:1]
        for situation in situations:
            out.append({
                "id": qid, "video": it["video"],
                "conversations": _human_gpt(
                    SQA3D_TEMPLATE.format(situation=situation, question=it["question"]), it["answer"]),
                "metadata": {"dataset": "sqa3d", "question_type": _sqa_type(it["question"])},
            })  # fmt: skip
    return out


# ---------------------------------------------------------------------------- the writer
def write_tiny_dataset(root, config: TinyDatasetConfig | dict | None = None) -> Path:
    """Write the tiny dataset (module docstring) to ``root`` (new or empty; written in a temporary
    sibling folder and moved into place, so ``root`` is never half-written). Returns ``root``."""
    if config is None:
        config = TinyDatasetConfig()
    elif isinstance(config, dict):
        config = parse(TinyDatasetConfig, config, "write_tiny_dataset config")
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise Vega3DError(f"{root}: write_tiny_dataset needs a new or empty folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".tmp-{os.getpid()}-{root.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        _write(tmp, config)
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return root


def _write(out: Path, cfg: TinyDatasetConfig) -> None:
    """Everything under ``out``, in the order the random draws are made (module docstring)."""
    rng = np.random.default_rng(cfg.seed)
    posed, meta = out / "scannet" / "posed_images", out / "metadata"
    scenes = dict(_write_scene(posed, cfg, k) for k in range(cfg.train_scenes + cfg.val_scenes))
    pred = _write_boxes(meta, scenes, rng)
    _write_infos(out, meta, scenes)
    # frame selection over the written files
    records = [max_coverage_record(posed / sid, frame_ids=v["frame_ids"], axis_align=v["align"],
                                   scene_voxels=v["points"], max_frames=cfg.select_frames, seed=cfg.seed)
               for sid, v in scenes.items()]  # fmt: skip
    write_select_frames(meta / "scannet_select_frames.json", records)
    _write_annotations(out / "processed", scenes, pred)
    summary = {sid: {"split": v["split"], "objects": [{k: o[k] for k in ("id", "label", "box")} for o in v["objects"]]}
               for sid, v in scenes.items()}  # fmt: skip
    write_json(out / "tiny_dataset.json",
               {"generator": "vega3d.video3d.write_tiny_dataset", "config": cfg.to_dict(), "scenes": summary})  # fmt: skip


def _write_scene(posed: Path, cfg: TinyDatasetConfig, k: int) -> tuple[str, dict]:
    """Scene ``k``'s scan folder (raw poses in the unaligned world, depth holes) and what the other
    files need of it: ``(scene id, {split, objects, room, align, k_depth, frame_ids, points})``."""
    scene_id = f"scene{k:04d}_00"
    srng = np.random.default_rng([cfg.seed, k])
    scene = synthetic_scene(num_frames=cfg.num_frames, height=cfg.height, width=cfg.width, seed=cfg.seed * 1000 + k,
                            num_boxes=int(srng.integers(3, 6)), num_spheres=int(srng.integers(1, 3)),
                            arc_degrees=cfg.arc_degrees, depth_size=(cfg.depth_height, cfg.depth_width),
                            name=scene_id)  # fmt: skip
    objects = _objects(scene, srng)
    align = _axis_align(srng)
    raw_poses = torch.from_numpy(np.linalg.inv(align)) @ scene.poses  # c2w in the unaligned world
    holes = torch.from_numpy(srng.random(tuple(scene.depth.shape)) < cfg.hole_fraction)
    depth = scene.depth.masked_fill(holes, 0.0)
    frame_ids = tuple(10 * i for i in range(cfg.num_frames))
    written = replace(scene, depth=depth, poses=raw_poses, axis_align=torch.from_numpy(align),
                      frame_ids=frame_ids, extras={})  # fmt: skip
    write_scene(written, posed / scene_id, layout="posed_images")
    points = np.unique(np.round(_surface_points(scene.extras["objects"]) / 0.1).astype(np.int64), axis=0)
    return scene_id, {"split": "train" if k < cfg.train_scenes else "val", "objects": objects,
                      "room": scene.extras["objects"], "align": align, "k_depth": _file_matrix(scene.intrinsics_depth),
                      "frame_ids": frame_ids, "points": points}  # fmt: skip


def _write_boxes(meta: Path, scenes: dict, rng: np.random.Generator) -> dict:
    """The GT box files (train, val) and the val proposals (returned: ``{video: boxes}``)."""
    gt = {s: {f"scannet/{sid}": [o["box"] for o in v["objects"]] for sid, v in scenes.items() if v["split"] == s}
          for s in ("train", "val")}  # fmt: skip
    pred = {
        f"scannet/{sid}": _proposals(v["objects"], v["room"], rng) for sid, v in scenes.items() if v["split"] == "val"
    }
    write_json(meta / "scannet_train_gt_box.json", gt["train"], indent=None)
    write_json(meta / "scannet_val_gt_box.json", gt["val"], indent=None)
    write_json(meta / "scannet_val_pred_box.json", pred, indent=None)
    return pred


def _write_infos(out: Path, meta: Path, scenes: dict) -> None:
    """EmbodiedScan infos per split and the scene voxels (pickles, as released)."""
    for split in ("train", "val", "test"):
        items = [
            {
                "sample_idx": f"scannet/{sid}",
                "axis_align_matrix": v["align"].astype(np.float32),
                "depth_cam2img": v["k_depth"].astype(np.float32),
                "images": [
                    {
                        "img_path": f"scannet/posed_images/{sid}/{f:05d}.jpg",
                        "depth_path": f"scannet/posed_images/{sid}/{f:05d}.png",
                    }
                    for f in v["frame_ids"]
                ],
            }
            for sid, v in scenes.items()
            if v["split"] == split
        ]
        _write_pickle(
            out / "embodiedscan" / f"embodiedscan_infos_{split}.pkl",
            {"metainfo": {"dataset": "vega3d tiny"}, "data_list": items},
        )
    _write_pickle(
        meta / "pcd_discrete_0.1.pkl",
        {sid: [tuple(int(x) for x in p) for p in v["points"]] for sid, v in scenes.items()},
    )


def _write_annotations(processed: Path, scenes: dict, pred: dict) -> None:
    """The ``*_llava_style.json`` files of the five tasks (SQA3D's val scenes split into val and test)."""
    sqa_next = [SQA3D_FIRST_ID]
    by_split = {}
    for split in ("train", "val"):
        items = [_scene_texts(sid, v["objects"], v["room"]) for sid, v in scenes.items() if v["split"] == split]
        by_split[split] = _records(split, items, pred if split == "val" else None, sqa_next)
    names = {"scanrefer": "scanrefer_vg", "multi3drefer": "multi3drefer", "scan2cap": "scan2cap", "scanqa": "scanqa"}
    for split, recs in by_split.items():
        for task, name in names.items():
            write_json(processed / f"{name}_{split}_llava_style.json", recs[task], indent=None)
    write_json(processed / "sqa3d_train_llava_style.json", by_split["train"]["sqa3d"], indent=None)
    val_sqa = by_split["val"]["sqa3d"]
    write_json(processed / "sqa3d_val_llava_style.json", val_sqa[0::2], indent=None)
    write_json(processed / "sqa3d_test_llava_style.json", val_sqa[1::2], indent=None)


def _file_matrix(k: torch.Tensor) -> np.ndarray:
    """4x4 intrinsics in the files' convention (pixel centres at integers)."""
    m = np.eye(4)
    m[:3, :3] = k.double().numpy()
    m[0, 2] -= 0.5
    m[1, 2] -= 0.5
    return m


def _write_pickle(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump(value, fh, protocol=4)
