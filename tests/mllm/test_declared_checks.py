"""The checks declared once (pydantic models) or merged into one: each bad value is one line naming
what was found and what was expected — a record's media keys, LLaVA turns, an answerer's settings,
a checkpoint folder without its weights, the processor's placeholder count, ``ask``'s arguments."""

import json

import pytest
import torch

from vega3d.errors import Vega3DError
from vega3d.mllm.checkpoint import CONFIG_FILE, read_checkpoint_meta
from vega3d.mllm.data import record_media
from vega3d.mllm.infer import AnswerSettings, question_problems
from vega3d.mllm.processing import llava_to_messages


@pytest.mark.parametrize(
    "record, match",
    [
        ({"video": 3}, r"^video: got 3; expected a path string$"),
        ({"video": ""}, r"^video: got ''; expected a path string$"),
        ({"image": ""}, r"^image: got ''; expected a path string or a list of them$"),
        ({"images": "a.png"}, r"^images: got 'a\.png'; expected a list of path strings$"),
        ({"image": "a.png", "images": ["b.png"]}, r"^has both 'image' and 'images'; expected one of them$"),
    ],
)
def test_bad_record_media(record, match):
    with pytest.raises(Vega3DError, match=match):
        record_media(record)


def test_record_media():
    assert record_media({"video": "v.mp4", "other": 1}) == ("v.mp4", [])
    assert record_media({"image": "a.png"}) == (None, ["a.png"])
    assert record_media({"images": ["a.png", "b.png"]}) == (None, ["a.png", "b.png"])
    assert record_media({"video": "v.mp4", "image": "a.png"}) == ("v.mp4", ["a.png"])  # both given to the model
    with pytest.raises(Vega3DError, match=r"^has both 'video' and 'images'; with data\.frames_as: images"):
        record_media({"video": "v.mp4", "images": ["a.png"]}, frames_as="images")


def test_bad_turns_name_the_record_and_the_turn():
    turns = [{"from": "human", "value": "<video>\nQ", "extra": 1}, {"from": "gpt", "value": 3}]
    with pytest.raises(Vega3DError, match=r"^rec7: conversations\.1\.value: input should be a valid string, got 3$"):
        llava_to_messages(turns, "rec7")
    assert llava_to_messages(turns[:1])[0]["content"] == [{"type": "video"}, {"type": "text", "text": "Q"}]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"num_frames": True}, "num_frames: got True; expected an integer >= 1"),
        ({"batch_size": 0}, "batch_size: got 0; expected an integer >= 1"),
        ({"max_new_tokens": 2.0}, "max_new_tokens: got 2.0; expected an integer >= 1"),
        ({"feature_cache_bytes": None}, "feature_cache_bytes: got None; expected an integer >= 0"),
        ({"frames_as": "frames"}, "frames_as: got 'frames'; expected one of video, images"),
    ],
)
def test_bad_answer_settings_are_one_line(settings, message):
    with pytest.raises(Vega3DError) as err:
        AnswerSettings(**settings)
    assert str(err.value) == message


def test_question_problems():
    assert question_problems(["q", "r"]) == []
    assert question_problems([" "]) == ["question: expected a non-empty question, got ' '"]
    assert question_problems(["q", 3]) == ["question #1: expected a non-empty question, got 3"]


def test_a_checkpoint_without_its_weights_is_refused_when_read(tmp_path):
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"format": "vega3d-qwen2.5-vl/1", "config": {}}))
    with pytest.raises(Vega3DError, match=r"format 'vega3d-qwen2\.5-vl/1', no trainable\.safetensors beside it"):
        read_checkpoint_meta(tmp_path)
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"format": "other/1", "config": {}}))
    (tmp_path / "trainable.safetensors").write_bytes(b"")
    with pytest.raises(Vega3DError, match=r"format 'other/1'; expected 'vega3d-qwen2\.5-vl/1' with a 'config'"):
        read_checkpoint_meta(tmp_path)


def test_placeholders_of_both_kinds_are_counted_in_one_message(processor):
    messages = llava_to_messages([{"from": "human", "value": "<video>\nQ"}, {"from": "gpt", "value": "A"}])
    with pytest.raises(Vega3DError) as err:
        processor.encode(messages, None, torch.tensor([[1, 4, 4]]))
    assert str(err.value).startswith(
        "1 <video> placeholder(s) in the human turns but 0 video(s); "
        "0 <image> placeholder(s) in the human turns but 1 image(s); expected one each"
    )


def test_ask_names_every_bad_argument_at_once(tmp_path, capsys):
    from vega3d.cli import main

    missing = tmp_path / "missing.mp4"
    argv = ["ask", "--model", str(tmp_path), "--video", str(missing), "--max-new-tokens", "0", " "]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert (
        "question: expected a non-empty question" in err and "--max-new-tokens: got 0; expected an integer >= 1" in err
    )
    assert f"--video: {missing} does not exist" in err


def test_branch_init_with_the_branch_off_fails_before_any_checkpoint_file_is_read(tmp_path, monkeypatch):
    from vega3d.mllm import checkpoint
    from vega3d.mllm.config import Vega3DConfig

    monkeypatch.setattr(checkpoint, "read_checkpoint_config", lambda d: pytest.fail("checkpoint config read first"))
    monkeypatch.setattr(checkpoint, "read_trainable", lambda d: pytest.fail("weights read first"))
    config = Vega3DConfig(base_model="unused", generative=False)
    with pytest.raises(Vega3DError, match=r"generative branch is off \(model.generative: false\)"):
        checkpoint.read_branch(tmp_path, config)


def test_numpy_integers_are_integer_settings_as_in_the_simulator():
    import numpy as np

    from vega3d.eval.runners.questions import check_arguments
    from vega3d.mllm.infer import AnswerSettings

    settings = AnswerSettings(num_frames=np.int64(8), batch_size=np.int32(2))
    assert (settings.num_frames, settings.batch_size) == (8, 2) and type(settings.num_frames) is int
    check_arguments("vsibench", num_frames=np.int64(8), limit=np.int64(1))
    with pytest.raises(Vega3DError, match=r"^num_frames: got np\.True_|^num_frames: got True"):
        AnswerSettings(num_frames=np.bool_(True))
