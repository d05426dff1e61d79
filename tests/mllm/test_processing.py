import numpy as np
import pytest
import torch

from vega3d.errors import Vega3DError
from vega3d.mllm.processing import IGNORE_INDEX, llava_to_messages, to_uint8_frames


def frames(n, h=56, w=84, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_static_video_equals_image_processor_path(processor):
    """Two identical frames must give exactly the image processor's rows (the image path
    duplicates one frame into both temporal slots) — same resize, normalisation, layout."""
    f = frames(1)
    video = processor.video_inputs(np.concatenate([f, f]))
    ip = processor.image_processor
    ip_size = dict(ip.size)
    ip.size = {"shortest_edge": processor.video_min_pixels, "longest_edge": processor.video_max_pixels}
    try:
        image = processor.image_inputs(f[0])
    finally:
        ip.size = ip_size
    assert torch.equal(video["video_grid_thw"], image["image_grid_thw"])
    assert torch.equal(video["pixel_values_videos"], image["pixel_values"])


def test_temporal_slots_hold_consecutive_frames_and_odd_counts_repeat_the_last(processor):
    f = frames(3, seed=1)
    out = processor.video_inputs(f)
    t, hp, wp = out["video_grid_thw"][0].tolist()
    assert (t, hp, wp) == (2, 4, 6)  # ceil(3/2) temporal patches, 56x84 -> 4x6 patches
    rows = out["pixel_values_videos"].reshape(t, hp * wp, 3, 2, 14, 14)
    single = [processor.video_inputs(np.concatenate([f[i : i + 1]] * 2))["pixel_values_videos"] for i in range(3)]
    single = [s.reshape(hp * wp, 3, 2, 14, 14)[:, :, 0] for s in single]
    assert torch.equal(rows[0, :, :, 0], single[0]) and torch.equal(rows[0, :, :, 1], single[1])
    assert torch.equal(rows[1, :, :, 0], single[2]) and torch.equal(rows[1, :, :, 1], single[2])  # padded


def test_float_and_uint8_frames_agree(processor):
    f = frames(2)
    as_float = torch.from_numpy(f).permute(0, 3, 1, 2).float() / 255
    a = processor.video_inputs(f)["pixel_values_videos"]
    b = processor.video_inputs(as_float)["pixel_values_videos"]
    assert torch.equal(a, b)


def test_encode_expands_video_tokens_and_masks_all_but_assistant(processor):
    grid = processor.video_inputs(frames(4))["video_grid_thw"]
    msgs = llava_to_messages(
        [
            {"from": "human", "value": "<video>\nHow many chairs?"},
            {"from": "gpt", "value": "Three."},
            {"from": "human", "value": "And tables?"},
            {"from": "gpt", "value": "One table."},
        ]
    )
    enc = processor.encode(msgs, grid)
    tok = processor.tokenizer
    n_video = int(grid.prod()) // 4
    assert int((enc["mm_token_type_ids"] == 2).sum()) == n_video
    assert int((enc["input_ids"] == tok.convert_tokens_to_ids("<|video_pad|>")).sum()) == n_video
    supervised = enc["input_ids"][enc["labels"] != IGNORE_INDEX]
    assert tok.decode(supervised) == "Three.<|im_end|>One table.<|im_end|>"
    # the labelled tokens are the ids themselves, everything else ignored
    keep = enc["labels"] != IGNORE_INDEX
    assert torch.equal(enc["labels"][keep], enc["input_ids"][keep])


def test_assistant_first_is_an_error(processor):
    msgs = llava_to_messages([{"from": "gpt", "value": "Hello"}, {"from": "human", "value": "hi"}])
    with pytest.raises(Vega3DError, match="starts with an assistant"):
        processor.encode(msgs)


def test_text_only_conversation(processor):
    msgs = llava_to_messages(
        [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]
    )
    enc = processor.encode(msgs)
    assert (enc["mm_token_type_ids"] == 0).all()
    assert processor.tokenizer.decode(enc["input_ids"][enc["labels"] != IGNORE_INDEX]) == "Hello.<|im_end|>"
    assert processor.tokenizer.decode(enc["input_ids"]).startswith("<|im_start|>system\nBe brief.<|im_end|>")


def test_generation_prompt_has_no_labels_and_ends_with_assistant(processor):
    grid = processor.video_inputs(frames(2))["video_grid_thw"]
    msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Where?"}]}]
    enc = processor.encode(msgs, grid, add_generation_prompt=True)
    assert (enc["labels"] == IGNORE_INDEX).all()
    assert processor.tokenizer.decode(enc["input_ids"]).endswith("<|im_start|>assistant\n")


def test_marker_count_must_match_inputs(processor):
    msgs = llava_to_messages([{"from": "human", "value": "no marker here"}, {"from": "gpt", "value": "x"}])
    grid = processor.video_inputs(frames(2))["video_grid_thw"]
    with pytest.raises(Vega3DError, match="video"):
        processor.encode(msgs, grid)
    two = llava_to_messages([{"from": "human", "value": "<video><video>q"}, {"from": "gpt", "value": "x"}])
    with pytest.raises(Vega3DError, match="placeholders"):
        processor.encode(two, grid)


@pytest.mark.parametrize(
    "conversations",
    [[], "text", [{"from": "robot", "value": "hi"}], [{"from": "human", "value": 3}], [{"value": "x"}]],
)
def test_bad_conversations(conversations):
    with pytest.raises(Vega3DError, match="rec7"):
        llava_to_messages(conversations, "rec7")


def test_llava_markers_become_content_items():
    msgs = llava_to_messages([{"from": "human", "value": "Look: <image>\nthen <video>\nWhat?"}])
    assert msgs[0]["content"] == [
        {"type": "text", "text": "Look: "},
        {"type": "image"},
        {"type": "text", "text": "then "},
        {"type": "video"},
        {"type": "text", "text": "What?"},
    ]


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 8, 8), np.uint8),
        np.zeros((2, 8, 8, 3), np.float32),
        torch.zeros(2, 8, 8, 3),
        np.zeros((0, 8, 8, 3), np.uint8),
    ],
)
def test_bad_frames(bad):
    with pytest.raises(Vega3DError, match="frames"):
        to_uint8_frames(bad)


def test_loads_the_real_qwen25vl_folder_style(tiny, tmp_path):
    """The released Qwen2.5-VL-7B-Instruct folder: min_pixels/max_pixels keys in
    preprocessor_config.json, the chat template only in chat_template.json."""
    import json
    import shutil

    from vega3d.mllm.processing import Vega3DProcessor

    folder = tmp_path / "qwen"
    shutil.copytree(tiny["qwen"], folder)
    (folder / "chat_template.jinja").unlink()
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "min_pixels": 3136,
                "max_pixels": 12845056,
                "patch_size": 14,
                "temporal_patch_size": 2,
                "merge_size": 2,
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
                "image_processor_type": "Qwen2VLImageProcessor",
                "processor_class": "Qwen2_5_VLProcessor",
            }
        )
    )
    proc = Vega3DProcessor.from_pretrained(folder)
    assert proc.image_processor.size["shortest_edge"] == 3136 and proc.image_processor.size["longest_edge"] == 12845056
    assert proc.tokenizer.chat_template and "<|im_start|>" in proc.tokenizer.chat_template
    (folder / "chat_template.json").unlink()
    with pytest.raises(Vega3DError, match="chat template"):
        Vega3DProcessor.from_pretrained(folder)
    with pytest.raises(Vega3DError, match="config.json"):
        Vega3DProcessor.from_pretrained(tmp_path)
