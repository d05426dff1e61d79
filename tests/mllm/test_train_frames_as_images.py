"""Training on frames as images (``data.frames_as: images``), as the released spatial model trained
(its ``read_video_images``): a dataset item against the release's input built from PIL,
transformers' image processor and the chat template (``reference_inputs``); a tiny run, what its
checkpoint records and the mode an Answerer then takes; the refused combination with a store."""

import json
from pathlib import Path
from typing import get_args

import pytest
import torch

from tests.mllm.test_frames_as_images import IMAGE_PAD, pad_runs, reference_inputs
from tests.mllm.test_train import TINY_YAML, overrides, read_log
from vega3d.errors import Vega3DError
from vega3d.mllm.data import ConversationDataset, DataConfig, collate, load_video
from vega3d.mllm.infer import FRAMES_AS, Answerer
from vega3d.training.config import load_train_config
from vega3d.training.loop import train


def images_config(tiny, **kw) -> DataConfig:
    return DataConfig(annotations=str(tiny["annotations"]), num_frames=4, frames_as="images", **kw)


def test_a_video_record_becomes_the_release_images(tiny, processor):
    ds = ConversationDataset(images_config(tiny), processor)
    item = ds[1]  # a frame folder of 6 frames, 56 × 84
    record = json.loads(Path(tiny["annotations"]).read_text())[1]
    question = record["conversations"][0]["value"].removeprefix("<video>\n")
    frames, _, _ = load_video(Path(tiny["annotations"]).parent / record["video"], 4)  # the sampled frames
    # 56 × 84 → 518 wide, round(56·518/84/14)·14 = 350 high; trimmed to 336 × 504
    ref = reference_inputs(tiny, processor.tokenizer, frames, question, record["conversations"][1]["value"], 350,
                           (336, 504))  # fmt: skip
    assert not [k for k in item if "video" in k or k == "second_per_grid_ts"]
    assert torch.equal(item["pixel_values"], ref["pixel_values"])
    assert torch.equal(item["image_grid_thw"], ref["image_grid_thw"]) and item["image_grid_thw"].shape == (4, 3)
    pad_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    assert pad_runs(item["input_ids"], pad_id) == [int(g.prod()) // 4 for g in item["image_grid_thw"]]
    assert torch.equal(item["input_ids"], ref["input_ids"][0])
    assert torch.equal(item["mm_token_type_ids"], ref["mm_token_type_ids"][0])
    answer = item["labels"] != -100
    assert answer.any() and not (answer & (item["input_ids"] == pad_id)).any()
    # the simulator's input: one prepared frame per image, uint8, exactly the reference's images
    assert [tuple(f.shape) for f in item["image_frames"]] == [(1, 336, 504, 3)] * 4
    assert all(f.dtype == torch.uint8 for f in item["image_frames"])
    assert torch.equal(torch.cat(item["image_frames"]).permute(0, 3, 1, 2).float() / 255, ref["frames"])
    batch = collate([ds[0], item], processor.tokenizer.pad_token_id)
    assert batch["image_grid_thw"].shape == (8, 3) and len(batch["image_frames"]) == 8
    assert "pixel_values_videos" not in batch and "second_per_grid_ts" not in batch
    # without a simulator attached: no frames
    assert "image_frames" not in ConversationDataset(images_config(tiny), processor, need_frames=False)[1]


def test_images_mode_refuses_a_record_with_a_video_and_an_image(tiny, processor, tmp_path):
    record = {**json.loads(Path(tiny["annotations"]).read_text())[0], "image": "frames_1/frame_0.png"}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps([record]))
    config = images_config(tiny).replace(annotations=str(path), media_root=str(Path(tiny["annotations"]).parent))
    with pytest.raises(Vega3DError, match=r"\(#0\) of .*ann\.json: has both 'video' and 'image'; with data\.frames_as"):
        ConversationDataset(config, processor)[0]


def test_images_mode_with_a_feature_store_is_one_config_error(tmp_path):
    with pytest.raises(Vega3DError) as err:
        load_train_config(TINY_YAML, ["data.frames_as=images", f"data.feature_store={tmp_path}"], check_paths=False)
    text = str(err.value)
    assert "\n" not in text and "data.frames_as: expected 'video' with data.feature_store (stored features" in text
    assert text.endswith("prepared as images: use the simulator section), got 'images'")
    with pytest.raises(Vega3DError, match=r"data\.frames_as: input should be 'video' or 'images', got 'frames'"):
        load_train_config(TINY_YAML, ["data.frames_as=frames"], check_paths=False)
    assert get_args(DataConfig.model_fields["frames_as"].annotation) == FRAMES_AS


def test_training_on_images_is_recorded_and_answered_that_way(tiny, tmp_path, capsys):
    from vega3d.cli import main

    out = tmp_path / "run"
    cfg = load_train_config(
        TINY_YAML, overrides(tiny, out, "data.frames_as=images", "train.max_steps=2", "train.save_every=0")
    )
    final = train(cfg, progress=False)
    losses = [r["loss"] for r in read_log(out)]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    recorded = json.loads((final / "vega3d_config.json").read_text())["config"]["preprocessing"]
    assert recorded["frames_as"] == "images" and recorded["num_frames"] == 4
    answerer = Answerer.from_checkpoint(final)  # the recorded mode by default
    video = str(Path(tiny["annotations"]).parent / "video_0.mp4")
    assert answerer.frames_as == "images" and answerer.prepare(video).grid_thw.shape == (4, 3)
    (answer,) = answerer.answer(["How many chairs?"], [video], max_new_tokens=4)
    capsys.readouterr()
    assert main(["ask", "--model", str(final), "--video", video, "--max-new-tokens", "4", "How many chairs?"]) == 0
    assert capsys.readouterr().out == answer + "\n"
    assert Answerer.from_checkpoint(final, frames_as="video").frames_as == "video"  # an explicit mode wins
