"""Training samples from a LeRobot-format LIBERO dataset: crops, colour, gripper convention, chunks, statistics,
determinism, and a dataset of the wrong width refused before any sample is read."""

import colorsys

import numpy as np
import pytest
import torch

from vega3d.errors import Vega3DError
from vega3d.libero.protocol import center_crop
from vega3d.policy.data import (
    PolicyData,
    PolicyDataset,
    action_chunk,
    collate,
    crop_resize,
    dataset_statistics,
    hsv_to_rgb,
    open_dataset,
    policy_image,
    rgb_to_hsv,
    to_openvla_gripper,
    to_uint8,
)
from vega3d.policy.folder import open_oft_folder
from vega3d.policy.processing import OFTProcessor


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    from vega3d.standin.oft import write_tiny_libero_dataset

    return write_tiny_libero_dataset(tmp_path_factory.mktemp("lerobot") / "data", episodes=2, length=5, size=64)


@pytest.fixture(scope="module")
def processor(tiny_oft):
    folder = open_oft_folder(tiny_oft)
    return OFTProcessor.from_folder(folder, folder.stats("libero_spatial"))


def test_centred_crop_equals_the_evaluation_centre_crop():
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    side = np.sqrt(np.float32(0.9))
    lo = (np.float32(1) - side) / np.float32(2)
    ours = to_uint8(crop_resize(image, lo, lo, side))
    np.testing.assert_array_equal(ours, center_crop(image))


def test_random_crop_stays_inside_and_shifts():
    image = np.tile(np.arange(224, dtype=np.uint8)[None, :, None], (224, 1, 3))  # value = column
    side = np.sqrt(np.float32(0.9))
    left, right = to_uint8(crop_resize(image, 0.0, 0.0, side)), to_uint8(crop_resize(image, 0.0, 1 - side, side))
    assert left[0, 0, 0] == 0 and right[0, -1, 0] >= 222  # the crop touches each border at its extreme offsets
    assert right[0, 0, 0] > left[0, 0, 0]


def test_hsv_matches_colorsys_and_round_trips():
    x = np.random.default_rng(0).random((50, 3)).astype(np.float32)
    hsv = rgb_to_hsv(x)
    np.testing.assert_allclose(hsv, np.array([colorsys.rgb_to_hsv(*p) for p in x]), atol=1e-6)
    np.testing.assert_allclose(hsv_to_rgb(hsv), x, atol=1e-6)


def test_gripper_convention_and_chunks():
    actions = np.array([[0.1] * 6 + [-1.0], [0.2] * 6 + [1.0], [0.3] * 6 + [0.0]])
    converted = to_openvla_gripper(actions)
    assert converted[:, -1].tolist() == [1.0, 0.0, 1.0]  # -1 open -> 1; +1 close -> 0; 1 - clip(g, 0, 1)
    np.testing.assert_array_equal(converted[:, :6], actions[:, :6])
    chunk = action_chunk(converted, 1, 4)
    np.testing.assert_array_equal(chunk, converted[[1, 2, 2, 2]])  # past the end, the last action repeats


def test_sample_targets_by_hand_and_determinism(dataset_root, processor):
    data = PolicyData(dataset=str(dataset_root))
    ds = PolicyDataset(data, processor, chunk=8, cameras=["agentview", "wrist"], branch_cameras=None, need_frames=False)
    assert len(ds) == 10
    sample = ds[3]  # episode 0, frame 3
    episode = ds.lerobot.episode(0)
    s = processor.statistics
    raw = np.array(episode.action[[3, 4, 4, 4, 4, 4, 4, 4]], dtype=np.float64)
    grip = 1 - np.clip(raw[:, 6], 0, 1)
    lo, hi = np.array(s.action_q01[:6]), np.array(s.action_q99[:6])
    expected = np.clip(2 * (raw[:, :6] - lo) / (hi - lo + 1e-8) - 1, -1, 1)
    np.testing.assert_allclose(sample["actions"][:, :6].numpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sample["actions"][:, 6].numpy(), grip, atol=1e-7)
    assert sample["pixel_values"].shape == (12, 224, 224) and sample["proprio"].shape == (8,)
    assert sample["prompt"] == processor.prompt_ids(episode.task)
    assert torch.equal(ds[3]["pixel_values"], sample["pixel_values"])  # same seed, epoch, index
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["pixel_values"], sample["pixel_values"])  # another epoch, another crop


def test_without_augmentation_the_image_is_the_evaluation_image(dataset_root, processor):
    data = PolicyData(dataset=str(dataset_root), random_crop=False, color_jitter=False)
    ds = PolicyDataset(data, processor, chunk=8, cameras=["agentview"], branch_cameras=["agentview"], need_frames=True)
    sample = ds[0]
    frame = ds.lerobot.episode(0).images["observation.images.image"][0]
    from vega3d.libero.protocol import prepare_image

    expected = prepare_image(frame, 224, crop=True)  # what the harness hands the policy
    np.testing.assert_array_equal(sample["generative_frames"][0].numpy(), expected)
    assert torch.equal(sample["pixel_values"], processor.pixel_values([expected]))
    batch = collate([ds[0], ds[1]], processor)
    assert batch["generative_frames"].shape == (2, 1, 224, 224, 3) and batch["num_skipped"] == 0


def test_a_dataset_of_another_action_width_is_refused_first(tmp_path, processor):
    from vega3d.libero.dataset import LeRobotWriter

    writer = LeRobotWriter(tmp_path / "six", fps=20)
    rng = np.random.default_rng(0)
    images = {"agentview": rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)}
    import vega3d.libero.dataset as lerobot

    names = lerobot.ACTION_NAMES
    try:
        lerobot.ACTION_NAMES = names[:6]
        writer.add_episode(images=images, state=np.zeros((2, 8)), action=np.zeros((2, 6)), task="t")
    finally:
        lerobot.ACTION_NAMES = names
    writer.close()
    with pytest.raises(Vega3DError, match=r"info.json: action has 6 dimensions; expected 7"):
        open_dataset(PolicyData(dataset=str(tmp_path / "six")), 7, 8, ["agentview"])


def test_dataset_statistics(dataset_root):
    from vega3d.libero.dataset import LeRobotDataset

    data = PolicyData(dataset=str(dataset_root))
    stats = dataset_statistics(LeRobotDataset(dataset_root), data)
    actions = to_openvla_gripper(LeRobotDataset(dataset_root).read_columns(["action"])["action"].astype(np.float64))
    np.testing.assert_allclose(stats.action_q99, np.quantile(actions, 0.99, axis=0))
    assert stats.action_mask == [True] * 6 + [False] and stats.key == "lerobot:data"


def test_policy_image_is_uint8_at_policy_size():
    frame = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    out = policy_image(frame, 224, torch.Generator().manual_seed(0), True, True)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
