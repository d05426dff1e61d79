"""Records with several images (a list under ``image``, or SPAR's ``images``): each image one
``<|image_pad|>`` block in placeholder order, checked against transformers' image processor and the
chat template (Qwen's images as they are), or against the release's images built from PIL
(``data.frames_as: images``, ``reference_inputs``); bad records; a tiny training run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Qwen2VLImageProcessorPil

from tests.mllm.test_frames_as_images import IMAGE_PAD, pad_runs, reference_inputs
from tests.mllm.test_train import TINY_YAML, overrides, read_log
from vega3d.errors import Vega3DError
from vega3d.mllm.data import ConversationDataset, DataConfig, collate
from vega3d.training.config import load_train_config
from vega3d.training.loop import train

ANSWER = "Left."


def write_images(folder: Path, shapes) -> list[np.ndarray]:
    """Random RGB images of ``shapes`` (H, W) as lossless PNGs img_<k>.png in ``folder``."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]
    for k, image in enumerate(images):
        Image.fromarray(image).save(folder / f"img_{k}.png")
    return images


def write_config(folder: Path, records, **kw) -> DataConfig:
    (folder / "ann.json").write_text(json.dumps(records))
    return DataConfig(annotations=str(folder / "ann.json"), **kw)


def record(value, question="<image>\nFirst. <image> Which is left?", key="image"):
    conversations = [{"from": "human", "value": question}, {"from": "gpt", "value": ANSWER}]
    return {"id": "two", key: value, "conversations": conversations}


def test_a_two_image_record_gives_two_blocks_in_placeholder_order(tmp_path, tiny, processor):
    images = write_images(tmp_path, [(56, 84), (84, 56)])  # different grids: the block order shows
    config = write_config(
        tmp_path, [record(["img_0.png", "img_1.png"]), record(["img_0.png", "img_1.png"], key="images")]
    )
    ds = ConversationDataset(config, processor)
    item = ds[0]
    # independently: transformers' image processor on both images, the chat template, one run per image
    vision = Qwen2VLImageProcessorPil.from_pretrained(tiny["qwen"])(images=images, return_tensors="pt")
    assert torch.equal(item["pixel_values"], vision["pixel_values"].float())
    assert torch.equal(item["image_grid_thw"], vision["image_grid_thw"])
    counts = [int(g.prod()) // 4 for g in vision["image_grid_thw"]]
    assert counts[0] != counts[1] or not torch.equal(*vision["image_grid_thw"])
    content = [{"type": "image"}, {"type": "text", "text": "First. "}, {"type": "image"},
               {"type": "text", "text": " Which is left?"}]  # fmt: skip
    messages = [{"role": "user", "content": content}, {"role": "assistant", "content": ANSWER}]
    text = processor.tokenizer.apply_chat_template(messages, tokenize=False)
    pieces = text.split(IMAGE_PAD)
    text = pieces[0] + "".join(IMAGE_PAD * n + piece for n, piece in zip(counts, pieces[1:]))
    ids = torch.tensor(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert torch.equal(item["input_ids"], ids)
    pad_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    assert pad_runs(item["input_ids"], pad_id) == [int(g.prod()) // 4 for g in vision["image_grid_thw"]]
    # the simulator's input: one frame per image, as read
    assert [f.shape for f in item["image_frames"]] == [(1, 56, 84, 3), (1, 84, 56, 3)]
    assert all(torch.equal(f[0], torch.from_numpy(image)) for f, image in zip(item["image_frames"], images))
    # SPAR's field "images" is the same list
    spar = ds[1]
    assert all(torch.equal(spar[k], item[k]) for k in ("input_ids", "labels", "pixel_values", "image_grid_thw"))
    batch = collate([item, spar], processor.tokenizer.pad_token_id)
    assert batch["image_grid_thw"].shape == (4, 3) and len(batch["image_frames"]) == 4


def test_images_mode_prepares_every_image_as_the_release_does(tmp_path, tiny, processor):
    images = write_images(tmp_path, [(48, 64), (48, 64)])
    config = write_config(tmp_path, [record(["img_0.png", "img_1.png"], "<image>\n<image>\nQ"), record("img_1.png",
                          "<image>\nQ")], frames_as="images")  # fmt: skip
    ds = ConversationDataset(config, processor)
    item = ds[0]
    # 48 × 64 → 518 wide, round(48·518/64/14)·14 = 392 high; trimmed to 392 × 504 (reference_inputs' sizes)
    ref = reference_inputs(tiny, processor.tokenizer, np.stack(images), "Q", ANSWER)
    assert torch.equal(item["pixel_values"], ref["pixel_values"])
    assert torch.equal(item["image_grid_thw"], ref["image_grid_thw"]) and item["image_grid_thw"].shape == (2, 3)
    assert torch.equal(item["input_ids"], ref["input_ids"][0])
    assert torch.equal(torch.cat(item["image_frames"]).permute(0, 3, 1, 2).float() / 255, ref["frames"])
    single = ds[1]  # a single image is prepared the same way
    ref = reference_inputs(tiny, processor.tokenizer, images[1][None], "Q", ANSWER)
    assert torch.equal(single["pixel_values"], ref["pixel_values"])
    assert torch.equal(single["image_grid_thw"], ref["image_grid_thw"])
    assert torch.equal(single["input_ids"], ref["input_ids"][0])
    assert len(single["image_frames"]) == 1 and single["image_frames"][0].shape == (1, 392, 504, 3)


@pytest.mark.parametrize(
    "bad, match",
    [
        (
            record(["img_0.png", "img_1.png"], "<image>\nQ"),
            r"1 <image> placeholder\(s\) in the human turns but 2 image",
        ),
        (record("img_0.png", "<image>\n<image>\nQ"), r"2 <image> placeholder\(s\) in the human turns but 1 image"),
        ({**record("img_0.png"), "images": ["img_1.png"]}, "has both 'image' and 'images'"),
        (record([]), r"2 <image> placeholder\(s\) in the human turns but 0 image"),
        (record(["img_0.png", 3]), r"image: got \['img_0.png', 3\]; expected a path string or a list of them"),
    ],
)
def test_bad_image_records_are_one_line_naming_the_record(tmp_path, processor, bad, match):
    write_images(tmp_path, [(56, 84), (84, 56)])
    ds = ConversationDataset(write_config(tmp_path, [bad]), processor)
    with pytest.raises(Vega3DError, match=r"^record 'two' \(#0\) of .*ann\.json: " + match) as err:
        ds[0]
    assert "\n" not in str(err.value)


def test_a_list_of_images_with_a_feature_store_is_refused(tmp_path, processor):
    write_images(tmp_path, [(56, 84), (84, 56)])
    ds = ConversationDataset(write_config(tmp_path, [record(["img_0.png", "img_1.png"])]), processor)
    ds.store = object()  # refused before the store is read: which stored item is which image is unknown
    with pytest.raises(Vega3DError, match=r"\(#0\) of .*: 2 images with data\.feature_store: a store keys one image"):
        ds[0]


def test_training_on_multi_image_records(tiny, tmp_path):
    write_images(tmp_path, [(56, 84), (84, 56)])
    records = [record(["img_0.png", "img_1.png"]), {**record(["img_1.png", "img_0.png"]), "id": "swapped"}]
    (tmp_path / "ann.json").write_text(json.dumps(records))
    out = tmp_path / "run"
    extra = [f"data.annotations={tmp_path / 'ann.json'}", "train.max_steps=2", "train.save_every=0"]
    config = load_train_config(TINY_YAML, overrides(tiny, out, *extra))
    assert config.data.annotations == str(tmp_path / "ann.json")  # the later override wins
    train(config, progress=False)
    losses = [r["loss"] for r in read_log(out)]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
