"""The release's frame count for videos (``data.video_frames: release``, LLaVA-Hound's rule):
round(n/2) frames clamped to 4..8 at linspace positions, checked by hand; a dataset item reads them;
the refused combination with a store."""

import json

import numpy as np
import pytest
import torch

from tests.mllm.test_train import TINY_YAML
from vega3d.errors import Vega3DError
from vega3d.media import write_frame_folder
from vega3d.mllm.data import ConversationDataset, DataConfig, release_frame_indices
from vega3d.training.config import load_train_config


@pytest.mark.parametrize(
    "total, expected",
    [
        (3, [0, 0, 1, 2]),  # round(1.5) = 2 → 4; linspace(0, 2, 4) = 0, .67, 1.33, 2
        (9, [0, 2, 5, 8]),  # round(4.5) = 4 (half to even); 0, 2.67, 5.33, 8
        (13, [0, 2, 4, 7, 9, 12]),  # round(6.5) = 6; step 2.4: 0, 2.4, 4.8, 7.2, 9.6, 12
        (40, [0, 5, 11, 16, 22, 27, 33, 39]),  # round(20) = 20 → 8; step 39/7 = 5.571...
    ],
)
def test_release_frame_indices_by_hand(total, expected):
    assert release_frame_indices(total) == expected


@pytest.mark.parametrize("frames_as", ["video", "images"])
def test_a_frame_folder_is_read_with_the_release_count(tmp_path, processor, frames_as):
    frames = np.repeat(np.arange(13, dtype=np.uint8)[:, None, None, None] * 19, 3, axis=-1)
    frames = np.ascontiguousarray(np.broadcast_to(frames, (13, 48, 64, 3)))  # frame i: flat grey 19·i
    write_frame_folder(tmp_path / "clip", frames)
    record = {"id": "clip", "video": "clip", "conversations": [{"from": "human", "value": "<video>\nQ"},
              {"from": "gpt", "value": "A"}]}  # fmt: skip
    (tmp_path / "ann.json").write_text(json.dumps([record]))
    config = DataConfig(
        annotations=str(tmp_path / "ann.json"), num_frames=2, video_frames="release", frames_as=frames_as
    )
    item = ConversationDataset(config, processor)[0]
    if frames_as == "video":
        assert torch.equal(item["video_frames"], torch.from_numpy(frames[[0, 2, 4, 7, 9, 12]]))
    else:  # one image per frame; a flat frame stays flat through the release's preprocessing
        assert item["image_grid_thw"].shape == (6, 3)
        assert [int(f[0, 0, 0, 0]) for f in item["image_frames"]] == [0, 38, 76, 133, 171, 228]


def test_release_count_with_a_feature_store_is_one_config_error(tmp_path):
    with pytest.raises(Vega3DError) as err:
        load_train_config(TINY_YAML, ["data.video_frames=release", f"data.feature_store={tmp_path}"], check_paths=False)
    text = str(err.value)
    assert "\n" not in text and "data.video_frames: expected 'fixed' with data.feature_store (a store holds" in text
