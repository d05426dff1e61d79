import json

import numpy as np
import pytest
import torch

from vega3d.errors import Vega3DError
from vega3d.media import read_frames, write_frame_folder, write_video
from vega3d.mllm.data import ConversationDataset, DataConfig, collate, load_video


def config(tiny, **kw):
    kw.setdefault("num_frames", 4)
    return DataConfig(annotations=str(tiny["annotations"]), video_min_pixels=3136, video_max_pixels=12544, **kw)


def test_video_file_and_frame_folder_give_the_same_frames(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (7, 32, 48, 3), dtype=np.uint8)
    frames[:] = frames[:, :1, :1]  # flat colours survive lossy video coding almost exactly
    folder = write_frame_folder(tmp_path / "f", frames)
    video = write_video(tmp_path / "v.mp4", frames, fps=2)
    a, idx, spg_folder = load_video(folder, 4, frame_fps=2.0)
    b, idx_v, spg_video = load_video(video, 4)
    assert idx == idx_v == [0, 2, 4, 6]
    assert np.array_equal(a, frames[idx])
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 8
    assert spg_folder == pytest.approx(spg_video) == pytest.approx(2 * (7 / 2) / 4)


def test_dataset_items(tiny, processor):
    ds = ConversationDataset(config(tiny), processor)
    assert len(ds) == 4
    for i in range(2):  # one mp4, one frame folder
        item = ds[i]
        assert item["video_frames"].shape[0] == 4 and item["video_frames"].dtype == torch.uint8
        assert item["video_grid_thw"].tolist() == [[2, 4, 6]]
        assert (item["labels"] != -100).any()
    batch = collate([ds[0], ds[1]], processor.tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["pixel_values_videos"].shape[0] == 2 * 2 * 4 * 6 and len(batch["video_frames"]) == 2


def test_collate_pads_left_and_right(processor, tiny):
    ds = ConversationDataset(config(tiny), processor)
    a, b = ds[0], ds[2]
    assert len(a["input_ids"]) != len(b["input_ids"])
    pad = processor.tokenizer.pad_token_id
    right = collate([a, b], pad)
    left = collate([a, b], pad, padding_side="left")
    short = int(np.argmin([len(a["input_ids"]), len(b["input_ids"])]))
    n = min(len(a["input_ids"]), len(b["input_ids"]))
    assert right["attention_mask"][short, :n].all() and not right["attention_mask"][short, n:].any()
    assert left["attention_mask"][short, -n:].all() and not left["attention_mask"][short, :-n].any()
    assert (right["labels"][short, n:] == -100).all()


def write_records(tmp_path, tiny, records):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(records))
    return DataConfig(
        annotations=str(path),
        media_root=str(tiny["annotations"].parent),
        num_frames=4,
        video_min_pixels=3136,
        video_max_pixels=12544,
        max_tokens=300,
    )


GOOD = {
    "id": "good",
    "video": "video_0.mp4",
    "conversations": [{"from": "human", "value": "<video>\nQ"}, {"from": "gpt", "value": "A"}],
}


@pytest.mark.parametrize(
    "bad,match",
    [
        ({**GOOD, "id": "missing", "video": "nope.mp4"}, "nope.mp4"),
        ({**GOOD, "id": "noanswer", "conversations": [{"from": "human", "value": "<video>\nQ"}]}, "assistant"),
        (
            {
                **GOOD,
                "id": "nomarker",
                "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}],
            },
            "video",
        ),
        ({**GOOD, "id": "notvideo", "video": "train.json"}, "train.json"),
        (
            {
                **GOOD,
                "id": "toolong",
                "conversations": [{"from": "human", "value": "<video>\n" + "Q " * 400}, {"from": "gpt", "value": "A"}],
            },
            "max_tokens=300",
        ),
    ],
)
def test_bad_record_names_record_and_file_or_is_skipped_and_counted(tmp_path, tiny, processor, bad, match):
    cfg = write_records(tmp_path, tiny, [GOOD, bad])
    ds = ConversationDataset(cfg, processor)
    assert ds[0]["id"] == "good"
    with pytest.raises(Vega3DError, match=match) as err:
        ds[1]
    assert repr(bad["id"]) in str(err.value) and "ann.json" in str(err.value)
    skipping = ConversationDataset(cfg.replace(skip_bad_records=True), processor)
    assert skipping[1] is None
    batch = collate([skipping[0], skipping[1]], processor.tokenizer.pad_token_id)
    assert batch["num_skipped"] == 1 and batch["ids"] == ["good"]  # not replaced by another sample


@pytest.mark.parametrize("content,match", [("{", "valid JSON"), ("[]", "non-empty"), ('[{"id": 1}]', "conversations")])
def test_bad_annotation_files(tmp_path, processor, content, match):
    path = tmp_path / "a.json"
    path.write_text(content)
    with pytest.raises(Vega3DError, match=match):
        ConversationDataset(DataConfig(annotations=str(path)), processor)


def test_read_frames_errors(tmp_path):
    with pytest.raises(Vega3DError, match="no such"):
        read_frames(tmp_path / "x.mp4", [0])
    (tmp_path / "empty").mkdir()
    with pytest.raises(Vega3DError, match="no images"):
        read_frames(tmp_path / "empty", [0])
    folder = write_frame_folder(tmp_path / "f", np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(Vega3DError, match=r"frames \[5\] .*expected positions in 0\.\.1"):
        read_frames(folder, [0, 5])


def test_image_records_train_through_the_simulator(tmp_path, tiny, processor, base, simulator):
    import copy

    from vega3d.mllm.config import Vega3DConfig
    from vega3d.mllm.model import Vega3DQwen

    record = {
        "id": "img",
        "image": "frames_1/frame_0.png",
        "conversations": [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A box."}],
    }
    ds = ConversationDataset(write_records(tmp_path, tiny, [record, GOOD]), processor)
    batch = collate([ds[0], ds[1]], processor.tokenizer.pad_token_id)
    assert batch["image_grid_thw"].shape == (1, 3) and batch["video_grid_thw"].shape == (1, 3)
    assert len(batch["image_frames"]) == 1 and len(batch["video_frames"]) == 1
    model = Vega3DQwen(copy.deepcopy(base), Vega3DConfig(base_model=str(tiny["qwen"]), generative_dim=32))
    model.attach_simulator(simulator)
    inputs = {k: v for k, v in batch.items() if k not in ("ids", "num_skipped")}
    out = model(**inputs)
    assert torch.isfinite(out.loss) and out.gate_means.shape == (2,)  # one video + one image


@pytest.mark.parametrize("layout", ["posed_images", "sensreader"])
def test_scan_folders_read_colour_frames_not_depth(tmp_path, layout):
    from vega3d.scenes import synthetic_scene, write_scene

    scene = synthetic_scene(num_frames=6, height=48, width=64, seed=3)
    folder = tmp_path / f"scene_{layout}"
    write_scene(scene, folder, layout=layout)
    frames, ids, spg = load_video(folder, 3, frame_fps=2.0)
    assert frames.shape == (3, 48, 64, 3) and frames.dtype == np.uint8
    positions = [list(scene.frame_ids).index(i) for i in ids]
    expected = np.asarray(scene.color)[positions]
    assert np.abs(frames.astype(int) - expected.astype(int)).mean() < 4  # colour (JPEG-coded), never the depth maps
    assert spg == pytest.approx(2 * (6 / 2.0) / 3)


def test_real_tum_scan_when_present(tum_sample):
    frames, ids, _ = load_video(tum_sample, 4)
    assert frames.shape[0] == 4 and frames.shape[-1] == 3 and len(ids) == 4
