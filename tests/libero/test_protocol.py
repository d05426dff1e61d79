"""The OpenVLA-OFT protocol pieces that need no simulator: constants, proprio, gripper, (un)normalisation, images."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from vega3d.errors import Vega3DError
from vega3d.libero import protocol as P


def test_protocol_constants_match_openvla_oft():
    assert P.SUITES == ("libero_spatial", "libero_object", "libero_goal", "libero_10")
    assert P.MAX_STEPS == {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520}
    assert (P.NUM_STEPS_WAIT, P.DUMMY_ACTION, P.ENV_SEED, P.CAMERA_SIZE) == (10, (0, 0, 0, 0, 0, 0, -1), 0, 256)
    assert (P.POLICY_IMAGE_SIZE, P.CENTER_CROP_AREA, P.INIT_STATES_PER_TASK) == (224, 0.9, 50)


def test_unknown_suite_and_task_are_one_line_errors():
    with pytest.raises(Vega3DError, match="unknown LIBERO suite 'libero_100'.*libero_spatial"):
        P.check_suite("libero_100")
    with pytest.raises(Vega3DError, match=r"unknown task id\(s\) \[10\]; expected ids in 0..9"):
        P.check_tasks("libero_goal", [3, 10])
    assert P.check_tasks("libero_goal", [3, 0, 3]) == [0, 3]
    assert P.check_tasks("libero_goal", None) == list(range(10))


def test_flip_turns_the_image_by_180_degrees():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    flipped = P.flip_image(image)
    assert flipped[0, 0].tolist() == image[1, 2].tolist() and flipped[1, 2].tolist() == image[0, 0].tolist()
    assert flipped.flags["C_CONTIGUOUS"]


def test_quat2axisangle_hand_values():
    assert P.quat2axisangle([0, 0, 0, 1]).tolist() == [0, 0, 0]
    s = math.sin(math.pi / 4)
    np.testing.assert_allclose(P.quat2axisangle([0, 0, s, s]), [0, 0, math.pi / 2], atol=1e-12)  # 90° about z
    np.testing.assert_allclose(P.quat2axisangle([1, 0, 0, 0]), [math.pi, 0, 0], atol=1e-12)  # 180° about x
    np.testing.assert_allclose(P.quat2axisangle([0, 0, 0, 1.0000001]), [0, 0, 0])  # w clipped, no NaN


def test_proprio_is_eef_pos_axis_angle_gripper_qpos():
    s = math.sin(math.pi / 4)
    obs = {"robot0_eef_pos": [0.1, 0.2, 0.3], "robot0_eef_quat": [0, 0, s, s], "robot0_gripper_qpos": [0.04, -0.04]}
    proprio = P.build_proprio(obs)
    assert proprio.shape == (8,) and proprio.dtype == np.float64
    np.testing.assert_allclose(proprio, [0.1, 0.2, 0.3, 0, 0, math.pi / 2, 0.04, -0.04], atol=1e-12)


def test_gripper_is_binarised_and_sign_inverted_as_openvla_oft():
    # model gripper in [0, 1] (1 = open) -> 2g-1 -> sign -> *(-1): LIBERO -1 = open, +1 = close
    chunk = np.array([[0.1, -0.2, 0.3, 0.0, 0.5, -0.5, g] for g in (1.0, 0.0, 0.7, 0.3, 0.5)])
    out = P.openvla_gripper_to_env(chunk)
    assert out[:, -1].tolist() == [-1.0, 1.0, -1.0, 1.0, 0.0]  # exactly 0.5 -> sign(0) = 0, as np.sign in OFT
    np.testing.assert_array_equal(out[:, :-1], chunk[:, :-1])
    assert chunk[0, -1] == 1.0  # input untouched
    assert P.openvla_gripper_to_env(np.array([0, 0, 0, 0, 0, 0, 0.9]))[-1] == -1.0


def test_unnormalize_actions_q01_q99_with_the_gripper_masked():
    q01, q99 = np.array([-2.0, 0.0, 1.0]), np.array([2.0, 4.0, 3.0])
    mask = np.array([True, True, False])
    out = P.unnormalize_actions(np.array([[-1.0, 0.0, 0.7], [1.0, 1.0, 0.2]]), q01, q99, mask)
    np.testing.assert_allclose(out, [[-2.0, 2.0, 0.7], [2.0, 4.0, 0.2]], atol=1e-7)
    # the inverse of normalize_proprio inside [q01, q99]
    x = np.array([0.5, 3.0, 1.5])
    back = P.unnormalize_actions(P.normalize_proprio(x, q01, q99), q01, q99)
    np.testing.assert_allclose(back, x, atol=1e-6)
    np.testing.assert_allclose(P.normalize_proprio([10.0, -10.0, 2.0], q01, q99), [1.0, -1.0, 0.0], atol=1e-7)
    with pytest.raises(Vega3DError, match="dimensions differ"):
        P.unnormalize_actions(np.zeros((8, 7)), np.zeros(6), np.ones(6))


def test_action_chunk_shape_checks():
    assert P.check_action_chunk(np.zeros((8, 7))).shape == (8, 7)
    assert P.check_action_chunk(np.zeros(7)).shape == (1, 7)
    with pytest.raises(Vega3DError, match=r"shape \(8, 6\); expected \(K, 7\)"):
        P.check_action_chunk(np.zeros((8, 6)))
    with pytest.raises(Vega3DError, match="non-finite"):
        P.check_action_chunk(np.full((2, 7), np.nan))


def test_lanczos_resize_weights_and_constant_images():
    weights = P._lanczos_matrix(256, 224)
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-6)  # float32, as TensorFlow
    assert weights.shape == (224, 256)
    # antialiased: the kernel spans 3 / (224/256) = 3.43 input px each side -> 6 or 7 taps inside the image
    assert set((weights[10:-10] != 0).sum(1).tolist()) <= {6, 7}
    flat = np.full((256, 256, 3), 77, np.uint8)
    assert (P.lanczos3_resize(flat, 224) == 77).all()
    assert (P.center_crop(np.full((224, 224, 3), 200, np.uint8)) == 200).all()


def test_center_crop_samples_the_central_90_percent_area():
    # a horizontal ramp: after the crop, the left edge samples column (1 - sqrt(0.9))/2 * 223 ≈ 2.87
    ramp = np.tile(np.arange(224, dtype=np.uint8)[None, :, None], (224, 1, 3))
    out = P.center_crop(ramp).astype(float)
    lo = (1 - math.sqrt(0.9)) / 2 * 223
    assert out[112, 0, 0] == pytest.approx(int(lo * 255.5 / 255), abs=1)
    assert out[112, -1, 0] == pytest.approx(int((223 - lo) * 255.5 / 255), abs=1)
    assert np.all(np.diff(out[112, :, 0]) >= 0)


def test_prepare_image_gives_policy_size():
    rng = np.random.default_rng(0)
    raw = (rng.random((256, 256, 3)) * 255).astype(np.uint8)
    out = P.prepare_image(raw, 224, crop=True)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    smooth = np.tile(np.linspace(0, 255, 256).astype(np.uint8)[None, :, None], (256, 1, 3))
    resized = P.resize_for_policy(smooth, 224).astype(int)
    expected = np.linspace(0, 255, 256)[((np.arange(224) + 0.5) * 256 / 224 - 0.5).round().astype(int)]
    assert np.abs(resized[128, 10:-10, 0] - expected[10:-10]).max() <= 3  # JPEG + resize keep a ramp


REFERENCE = Path(__file__).parent / "data" / "tf_preprocess_reference.npz"


def test_preprocessing_matches_tensorflow_reference():
    # tests/libero/data/tf_preprocess_reference.npz: OFT's resize_image_for_policy (64 -> 56 px, the 256 -> 224
    # ratio) and center_crop_image steps computed with TensorFlow 2.21 on a fixed image
    ref = np.load(REFERENCE)
    resized = P.lanczos3_resize(ref["jpeg"], 56)
    assert np.abs(resized.astype(int) - ref["resized"]).max() <= 1
    assert (resized != ref["resized"]).mean() < 1e-3
    np.testing.assert_array_equal(P.center_crop(ref["resized"]), ref["crop"])
    if importlib.util.find_spec("simplejpeg") is None:
        pytest.skip("simplejpeg (libero extra) not installed: the JPEG step is Pillow's, not bit-identical")
    np.testing.assert_array_equal(P.jpeg_roundtrip(ref["image"]), ref["jpeg"])
