"""Frames as images, the released VEGA-3D spatial model's input (docs/release.md).

The preprocessing is checked against hand computations (sizes, the crop offset and scale on a
linear ramp); the Answerer's ``frames_as="images"`` against ``Vega3DQwen.generate`` called with
inputs built here from PIL, transformers' image processor and the tokenizer's chat template.
Tiny random-weight stand-ins: answers are noise, only their equality matters.
"""

import re

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Qwen2VLImageProcessorPil

from vega3d.errors import Vega3DError
from vega3d.mllm.infer import Answerer
from vega3d.mllm.model import Vega3DQwen
from vega3d.mllm.release.frames import preprocess_release_frames, release_image_size

QUESTIONS = ["How many chairs?", "Where is the lamp?"]
IMAGE_PAD = "<|image_pad|>"


def ramp(height: int, width: int) -> np.ndarray:
    """(1,H,W,3) uint8: 0.6·y/(H−1) + 0.4·x/(W−1), linear in both directions (bicubic keeps it away
    from the borders)."""
    y, x = np.mgrid[:height, :width]
    value = 0.6 * y / (height - 1) + 0.4 * x / (width - 1)
    return np.repeat(np.round(value * 255).astype(np.uint8)[None, ..., None], 3, axis=-1)


@pytest.mark.parametrize(
    "height, width, resized_height, top, size",
    [
        (480, 640, 392, 0, (392, 504)),  # 518 wide, round(27.75)·14 = 392 high; 518 → 504
        (800, 480, 868, 175, (504, 504)),  # round(62.0)·14 = 868 high → centre 518 rows from (868−518)//2 → 504
    ],
)
def test_release_preprocessing_by_hand(height, width, resized_height, top, size):
    assert release_image_size(height, width) == size
    out = preprocess_release_frames(ramp(height, width))
    assert out.shape == (1, 3, *size) and out.dtype == torch.float32
    # output pixel (r, c) is resized pixel (top + r, c): source centre ((top + r + .5)·H/h' − .5, (c + .5)·W/518 − .5)
    rows, cols = np.arange(size[0]), np.arange(size[1])
    ys = (top + rows + 0.5) * height / resized_height - 0.5
    xs = (cols + 0.5) * width / 518 - 0.5
    expected = 0.6 * ys[:, None] / (height - 1) + 0.4 * xs[None, :] / (width - 1)
    inner = (slice(3, -3) if top == 0 else slice(None), slice(3, None))  # away from the frame's borders
    error = (out[0, 0].numpy() - expected)[inner]
    assert np.abs(error).max() < 1 / 255  # rounding of the ramp and of PIL's uint8 output
    assert torch.equal(out[0, 0], out[0, 2])
    # exactly PIL's bicubic resize to 518 × resized_height, rows [top, top + h), columns [0, w)
    full = np.array(Image.fromarray(ramp(height, width)[0]).resize((518, resized_height), Image.Resampling.BICUBIC))
    assert torch.equal(out[0], torch.from_numpy(full[top : top + size[0], : size[1]]).permute(2, 0, 1).float() / 255)


def test_release_frames_stay_in_range_and_give_qwen_grid_28_by_36():
    noise = torch.randint(0, 256, (2, 480, 640, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = preprocess_release_frames(noise)
    assert out.min() >= 0 and out.max() <= 1 and out.min() == 0 and out.max() == 1  # bicubic overshoot clipped
    assert torch.equal(out * 255, (out * 255).round())  # PIL's uint8 values
    assert torch.equal(preprocess_release_frames(noise.permute(0, 3, 1, 2).float() / 255), out)
    # Qwen2.5-VL's image processor (its preprocessor_config's pixel bounds) keeps 504 × 392: 28 × 36 patches
    qwen = Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=12845056)
    grid = qwen(images=list(out), do_rescale=False, return_tensors="pt")["image_grid_thw"]
    assert grid.tolist() == [[1, 28, 36]] * 2 and int(grid[0].prod()) // 4 == 252
    with pytest.raises(Vega3DError, match=r"frame 10x640 \(HxW\): too wide"):
        release_image_size(10, 640)


# ------------------------------------------------------------------------------------------ answering
@pytest.fixture
def captured(monkeypatch):
    """Every ``Vega3DQwen.generate`` call's keyword arguments."""
    calls, generate = [], Vega3DQwen.generate

    def recording(self, **kwargs):
        calls.append(kwargs)
        return generate(self, **kwargs)

    monkeypatch.setattr(Vega3DQwen, "generate", recording)
    return calls


def reference_inputs(
    tiny, tokenizer, frames: np.ndarray, question: str, answer: str | None = None, resized=392, size=(392, 504)
) -> dict:
    """The release's input for a clip of 48 × 64 frames (``resized``, ``size``: the hand-computed
    sizes of another), built without vega3d's helpers: PIL resize to 518 × round(48·518/64/14)·14 =
    518 × 392, trimmed to 392 × 504; transformers' image processor (do_rescale=False); the chat
    template with one image item per frame before the question (and ``answer``'s turn, when given)."""
    images = [np.asarray(Image.fromarray(f).resize((518, resized), Image.Resampling.BICUBIC)) for f in frames]
    images = torch.from_numpy(np.stack(images)[:, : size[0], : size[1]]).permute(0, 3, 1, 2).float() / 255
    vision = Qwen2VLImageProcessorPil.from_pretrained(tiny["qwen"])(
        images=list(images), do_rescale=False, return_tensors="pt"
    )
    content = [{"type": "image"}] * len(images) + [{"type": "text", "text": question}]
    messages = [{"role": "user", "content": content}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=answer is None)
    pieces = text.split(IMAGE_PAD)
    counts = [int(g.prod()) // 4 for g in vision["image_grid_thw"]]
    text = pieces[0] + "".join(IMAGE_PAD * n + piece for n, piece in zip(counts, pieces[1:]))
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    types = (ids == tokenizer.convert_tokens_to_ids(IMAGE_PAD)).long()
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "mm_token_type_ids": types,
        "pixel_values": vision["pixel_values"],
        "image_grid_thw": vision["image_grid_thw"],
        "frames": images,
    }


def pad_runs(ids: torch.Tensor, pad_id: int) -> list[int]:
    """Lengths of the runs of ``pad_id`` in one row of token ids."""
    runs, n = [], 0
    for token in ids.tolist() + [None]:
        if token == pad_id:
            n += 1
        elif n:
            runs, n = runs + [n], 0
    return runs


def test_images_mode_gives_one_image_per_frame_and_the_release_input(model, processor, tiny, captured):
    frames = torch.randint(0, 256, (4, 48, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    tok = processor.tokenizer
    answerer = Answerer(model, processor, num_frames=4, frames_as="images")
    answers = answerer.answer(QUESTIONS, [frames, frames], max_new_tokens=4, batch_size=2)
    (batch,) = captured
    # no video inputs; 2 questions × 4 images, each its own <|image_pad|> block of t·h·w/4 tokens
    assert all(batch.get(k) is None for k in ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts"))
    assert "video_features" not in batch and "video_frames" not in batch
    grid = batch["image_grid_thw"]
    assert grid.shape == (8, 3) and len(batch["image_features"]) == 8
    pad_id = tok.convert_tokens_to_ids(IMAGE_PAD)
    for row in range(2):
        assert pad_runs(batch["input_ids"][row], pad_id) == [int(g.prod()) // 4 for g in grid[4 * row : 4 * row + 4]]

    for q, question in enumerate(QUESTIONS):
        ref = reference_inputs(tiny, tok, frames.numpy(), question)
        # the simulator saw the same prepared frames, one call per image (as training's image_frames)
        grids = torch.cat([model.simulator.extract(ref["frames"][i : i + 1]) for i in range(4)])
        assert not torch.allclose(grids[1:], model.simulator.extract(ref["frames"])[1:])  # not one call over all
        features = batch["image_features"][4 * q : 4 * q + 4]
        assert all(torch.allclose(f, grids[i : i + 1], atol=1e-6) for i, f in enumerate(features))
        assert torch.equal(batch["pixel_values"].unflatten(0, (2, -1))[q], ref["pixel_values"])
        assert torch.equal(grid[4 * q : 4 * q + 4], ref["image_grid_thw"])
        mask = batch["attention_mask"][q].bool()  # left padding
        assert torch.equal(batch["input_ids"][q][mask], ref["input_ids"][0])
        frames_in = {k: ref[k] for k in ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values")}
        out = model.generate(
            **frames_in, image_grid_thw=ref["image_grid_thw"], image_features=[grids[i : i + 1] for i in range(4)],
            max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id,
        )  # fmt: skip
        assert tok.decode(out[0, ref["input_ids"].shape[1] :], skip_special_tokens=True) == answers[q]


def test_images_mode_baseline_prepared_frames_and_bad_mode(model, processor, tiny, captured):
    frames = torch.randint(0, 256, (6, 48, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    tok = processor.tokenizer
    answerer = Answerer(model, processor, num_frames=4, frames_as="images")
    prepared = answerer.prepare(frames)  # frames 0, 1, 3, 5 (uniform), as the model and the simulator see them
    ref = reference_inputs(tiny, tok, frames.numpy()[[0, 1, 3, 5]], QUESTIONS[0])
    assert prepared.frames.shape == (4, 392, 504, 3) and prepared.frames_as == "images"
    assert torch.equal(torch.from_numpy(prepared.frames).permute(0, 3, 1, 2).float() / 255, ref["frames"])
    # the baseline (branch off): the same images, no simulator
    (answer,) = answerer.answer(QUESTIONS[:1], [prepared], max_new_tokens=4, generative=False)
    assert prepared.features is None and len(captured[0]["image_frames"]) == 4
    inputs = {k: ref[k] for k in ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values", "image_grid_thw")}
    out = model.generate(**inputs, generative=False, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert tok.decode(out[0, ref["input_ids"].shape[1] :], skip_special_tokens=True) == answer
    # a video-mode answerer (the default) refuses frames prepared as images
    video = Answerer(model, processor, num_frames=4)
    assert video.frames_as == "video" and video.prepare(frames).grid_thw.shape == (1, 3)
    with pytest.raises(Vega3DError, match=r"made with settings \(4, .*'images'\) .*frames_as\) but this answerer"):
        video.answer(QUESTIONS[:1], [prepared])
    with pytest.raises(Vega3DError, match=r"^frames_as: got 'frame'; expected one of video, images$"):
        Answerer(model, processor, frames_as="frame")


# ------------------------------------------------------------------------------------------ the CLI
def test_ask_frames_as_images_answers_as_the_answerer(tiny, tmp_path, capsys):
    from vega3d.cli import main
    from vega3d.standin.data import write_tiny_checkpoint

    checkpoint, video = write_tiny_checkpoint(tmp_path), str(tiny["root"] / "data" / "video_0.mp4")
    argv = ["ask", "--model", str(checkpoint), "--video", video, "--max-new-tokens", "3", QUESTIONS[0]]
    assert main([*argv, "--frames-as", "images"]) == 0
    answerer = Answerer.from_checkpoint(checkpoint, frames_as="images")
    assert capsys.readouterr().out == answerer.answer(QUESTIONS[:1], [video], max_new_tokens=3)[0] + "\n"
    assert Answerer.from_checkpoint(checkpoint).frames_as == "video"  # it records no mode: a video
    with pytest.raises(SystemExit):
        main([*argv, "--frames-as", "frames"])
    assert re.search(
        r"error: argument --frames-as: invalid choice: 'frames' \(choose from '?video'?, ", capsys.readouterr().err
    )


def test_frames_as_images_is_refused_for_video3d_llm_checkpoints(tiny, tmp_path, monkeypatch, capsys):
    from vega3d.cli import main
    from vega3d.mllm.video3d_llm import model as video3d

    monkeypatch.setattr(video3d, "is_video3d_checkpoint", lambda path: True)  # checked before anything loads
    video = str(tiny["root"] / "data" / "video_0.mp4")
    for argv in (
        ["ask", "--model", str(tmp_path), "--video", video, "--frames-as", "images", "q"],
        [
            "eval-model",
            "sqa3d",
            "--model",
            str(tmp_path),
            "--gt",
            "x",
            "--media",
            "y",
            "--out",
            "z",
            "--frames-as",
            "images",
        ],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "--frames-as images: only for Qwen2.5-VL checkpoints" in err and err.count("\n") == 1
