"""The OpenVLA-OFT LIBERO evaluation protocol: constants and the pure functions around the simulator.

Everything here is numpy only (no simulator import), so policies, tests and training code can use
it without the ``libero`` extra. The rules are those of OpenVLA-OFT's
``experiments/robot/libero/run_libero_eval.py``, ``libero_utils.py``, ``robot_utils.py`` and
``openvla_utils.py`` (revision 213c5ff); each function names the original it reproduces.

Per episode (:mod:`vega3d.libero.runner` runs it): ``env.reset()``, ``env.set_init_state(init_states[i])``
for episode ``i``, :data:`NUM_STEPS_WAIT` steps of :data:`DUMMY_ACTION`, then up to
``MAX_STEPS[suite]`` policy steps; the policy is queried when its action queue is empty and its
whole chunk runs open loop; the episode succeeds when ``step()`` reports ``done``.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

import numpy as np

from vega3d.errors import Vega3DError

#: The four suites of the OpenVLA-OFT protocol, in the paper's order.
SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
#: Policy steps per episode (after the wait), per suite (OFT ``TASK_MAX_STEPS``; longest demo 193/254/270/505).
MAX_STEPS = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520}
#: Tasks per suite and fixed initial states per task (upstream LIBERO).
TASKS_PER_SUITE = 10
INIT_STATES_PER_TASK = 50
#: Dummy steps while objects settle (OFT ``num_steps_wait``) and the action used for them.
NUM_STEPS_WAIT = 10
DUMMY_ACTION = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)
#: Seed OFT passes to ``env.seed`` once per task env (LIBERO reseeds numpy's global generator).
ENV_SEED = 0
#: OFT's default run seed (``--seed 7``); the paper averages three seeds.
DEFAULT_SEED = 7
#: Rendered camera side (OFT ``env_img_res``), the policy input side, the centre-crop area.
CAMERA_SIZE = 256
POLICY_IMAGE_SIZE = 224
CENTER_CROP_AREA = 0.9
#: JPEG quality of the training data pipeline's re-encode (``tf.image.encode_jpeg`` default).
JPEG_QUALITY = 95
#: Control frequency of LIBERO's OSC_POSE controller (Hz).
CONTROL_HZ = 20
#: Camera name in vega3d -> observation key in LIBERO.
CAMERAS = {"agentview": "agentview_image", "wrist": "robot0_eye_in_hand_image"}
ACTION_DIM = 7
PROPRIO_DIM = 8


def check_suite(suite: str) -> str:
    """``suite`` if it is one of :data:`SUITES`; a :class:`Vega3DError` naming them otherwise."""
    if suite not in SUITES:
        raise Vega3DError(f"unknown LIBERO suite {suite!r}; expected one of {', '.join(SUITES)}")
    return suite


def check_tasks(suite: str, tasks) -> list[int]:
    """Task ids (sorted, unique) of ``suite``; None means all; a :class:`Vega3DError` for ids out of range."""
    check_suite(suite)
    if tasks is None:
        return list(range(TASKS_PER_SUITE))
    tasks = sorted({int(t) for t in tasks})
    bad = [t for t in tasks if not 0 <= t < TASKS_PER_SUITE]
    if not tasks or bad:
        raise Vega3DError(f"{suite}: unknown task id(s) {bad or '[]'}; expected ids in 0..{TASKS_PER_SUITE - 1}")
    return tasks


# --- observations -------------------------------------------------------------------------------------


def flip_image(image: np.ndarray) -> np.ndarray:
    """A raw LIBERO camera image turned upright: ``image[::-1, ::-1]`` (both axes; OFT ``get_libero_image``)."""
    return np.ascontiguousarray(image[::-1, ::-1])


def quat2axisangle(quat) -> np.ndarray:
    """Quaternion (x, y, z, w) -> axis-angle (3,), exactly as OFT's copy of robosuite's ``quat2axisangle``:
    ``w`` clipped to [-1, 1], a zero vector when the rotation angle is (close to) zero."""
    quat = np.array(quat, dtype=np.float64)
    quat[3] = min(max(quat[3], -1.0), 1.0)
    den = np.sqrt(1.0 - quat[3] * quat[3])
    if math.isclose(den, 0.0):
        return np.zeros(3)
    return (quat[:3] * 2.0 * math.acos(quat[3])) / den


def build_proprio(obs: dict) -> np.ndarray:
    """The 8-D proprio OFT feeds the policy: ``robot0_eef_pos`` (3) ‖ axis-angle of ``robot0_eef_quat`` (3)
    ‖ ``robot0_gripper_qpos`` (2), float64 (OFT ``prepare_observation``)."""
    return np.concatenate(
        (np.asarray(obs["robot0_eef_pos"], np.float64), quat2axisangle(obs["robot0_eef_quat"]),
         np.asarray(obs["robot0_gripper_qpos"], np.float64))
    )  # fmt: skip


# --- actions --------------------------------------------------------------------------------------------


def openvla_gripper_to_env(actions: np.ndarray) -> np.ndarray:
    """OFT's ``process_action`` for model family openvla: the gripper (last column) comes from the
    model in the dataset convention [0, 1] (0 = close, 1 = open); it is mapped to [-1, 1]
    (``2g - 1``), binarised with ``np.sign`` (so exactly 0.5 gives 0, "keep") and sign-inverted to
    LIBERO's convention (-1 = open, +1 = close). Other columns unchanged. Works on (7,) or (K, 7)."""
    out = np.array(actions, dtype=np.float64, copy=True)
    out[..., -1] = -np.sign(2.0 * out[..., -1] - 1.0)
    return out


def unnormalize_actions(normalized, q01, q99, mask=None) -> np.ndarray:
    """BOUNDS_Q99 un-normalisation (OFT ``_unnormalize_actions``): ``0.5 (a + 1) (q99 - q01 + 1e-8) + q01``
    where ``mask`` is true (default: every dimension), the value unchanged elsewhere (the gripper,
    whose mask is false in OFT's statistics). ``normalized``: (..., D)."""
    a = np.asarray(normalized, dtype=np.float64)
    low, high = np.asarray(q01, np.float64), np.asarray(q99, np.float64)
    _check_stats_dims(a, low, high, mask, "action")
    mask = np.ones_like(low, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    return np.where(mask, 0.5 * (a + 1.0) * (high - low + 1e-8) + low, a)


def normalize_proprio(proprio, q01, q99, mask=None) -> np.ndarray:
    """BOUNDS_Q99 normalisation of the proprio (OFT ``normalize_proprio``): ``2 (x - q01) / (q99 - q01 + 1e-8) - 1``
    where ``mask`` is true, unchanged elsewhere, then clipped to [-1, 1]."""
    x = np.asarray(proprio, dtype=np.float64)
    low, high = np.asarray(q01, np.float64), np.asarray(q99, np.float64)
    _check_stats_dims(x, low, high, mask, "proprio")
    mask = np.ones_like(low, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    return np.clip(np.where(mask, 2.0 * (x - low) / (high - low + 1e-8) - 1.0, x), -1.0, 1.0)


def _check_stats_dims(x, low, high, mask, what: str) -> None:
    dims = {x.shape[-1], low.shape[-1], high.shape[-1]} | ({np.shape(mask)[-1]} if mask is not None else set())
    if len(dims) != 1:
        raise Vega3DError(
            f"{what} normalisation: dimensions differ (values {x.shape[-1]}, q01 {low.shape[-1]}, "
            f"q99 {high.shape[-1]}{'' if mask is None else f', mask {np.shape(mask)[-1]}'}); expected one size"
        )


def check_action_chunk(chunk, what: str = "policy") -> np.ndarray:
    """``chunk`` as a float64 (K, 7) array with K >= 1 and finite values; a :class:`Vega3DError` otherwise."""
    a = np.asarray(chunk, dtype=np.float64)
    if a.ndim == 1 and a.shape[0] == ACTION_DIM:
        a = a[None]
    finite = bool(np.isfinite(a).all())
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] != ACTION_DIM or not finite:
        raise Vega3DError(f"{what}: action chunk{'' if finite else ' with non-finite values'} of shape "
                          f"{tuple(a.shape)}; expected (K, {ACTION_DIM}) with K >= 1, finite")  # fmt: skip
    return a


# --- the training pipeline's image preprocessing ----------------------------------------------------------


def _lanczos3(x: np.ndarray) -> np.ndarray:
    """TensorFlow's ``LanczosKernelFunc`` with radius 3, in float32."""
    x = np.abs(x).astype(np.float32)
    pi = np.float32(np.pi)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.float32(3) * np.sin(pi * x) * np.sin(pi * x / np.float32(3)) / (pi * pi * x * x)
    return np.where(x > 3, np.float32(0), np.where(x <= 1e-3, np.float32(1), value)).astype(np.float32)


@lru_cache(maxsize=16)
def _lanczos_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) float32 weights of ``tf.image.resize(method="lanczos3", antialias=True)`` along one
    axis (TensorFlow ``scale_and_translate`` spans: kernel widened by 1/scale when shrinking,
    weights normalised to sum 1, float32 as TensorFlow computes them)."""
    inv_scale = np.float32(in_size / out_size)
    kernel_scale = max(inv_scale, np.float32(1))
    radius = np.float32(3) * kernel_scale
    half = np.float32(0.5)
    weights = np.zeros((out_size, in_size), np.float32)
    for x in range(out_size):
        sample = (np.float32(x) + half) * inv_scale
        start = min(max(math.ceil(sample - radius - half), 0), in_size - 1)
        end = min(max(math.floor(sample + radius - half), 0), in_size - 1) + 1
        source = np.arange(start, end, dtype=np.float32)
        w = _lanczos3((source + half - sample) * (np.float32(1) / kernel_scale))
        weights[x, start:end] = w * (np.float32(1) / w.sum(dtype=np.float32))
    return weights


def lanczos3_resize(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 with TensorFlow's antialiased Lanczos-3 in float32,
    rounded half to even and clipped (``tf.image.resize(..., "lanczos3", antialias=True)`` then
    ``tf.round`` and a uint8 cast, as OFT's ``resize_image_for_policy``; measured against
    TensorFlow 2.21: equal except +-1 on ~1 value in 10^5, from the summation order)."""
    h, w = image.shape[:2]
    rows, cols = _lanczos_matrix(h, size), _lanczos_matrix(w, size)
    out = np.einsum("oh,hwc->owc", rows, image.astype(np.float32)).astype(np.float32)
    out = np.einsum("pw,owc->opc", cols, out)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def jpeg_roundtrip(image: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """Encode as JPEG (4:2:0, ``quality``, Pillow) and decode again, as the RLDS pipeline stores
    frames (``tf.image.encode_jpeg`` + ``tf.io.decode_image``). TensorFlow decodes with libjpeg's
    fast integer IDCT; simplejpeg (in the ``libero`` extra) does the same with ``fastdct=True``
    and the result is bit-identical to TensorFlow's. Without simplejpeg, Pillow's accurate IDCT
    is used and pixels differ by up to ~10 levels (a warning says so once)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
    try:
        import simplejpeg
    except ImportError:
        _warn_inexact_jpeg()
        buffer.seek(0)
        with Image.open(buffer) as im:
            return np.asarray(im.convert("RGB"))
    return simplejpeg.decode_jpeg(buffer.getvalue(), colorspace="RGB", fastdct=True, fastupsample=False)


@lru_cache(maxsize=1)
def _warn_inexact_jpeg() -> None:
    import warnings

    warnings.warn(
        "simplejpeg is not installed: the JPEG round trip of the policy preprocessing uses Pillow's IDCT, "
        "which differs from TensorFlow's by a few levels; install the 'libero' extra for the exact one",
        stacklevel=3,
    )


def resize_for_policy(image: np.ndarray, size: int = POLICY_IMAGE_SIZE) -> np.ndarray:
    """OFT's ``resize_image_for_policy``: JPEG round trip, then antialiased Lanczos-3 to ``size``²."""
    return lanczos3_resize(jpeg_roundtrip(image), size)


def center_crop(image: np.ndarray, area: float = CENTER_CROP_AREA) -> np.ndarray:
    """OFT's ``center_crop_image``: the centred square covering ``area`` of the image (side
    sqrt(area)), resized back to the input size with ``tf.image.crop_and_resize``'s bilinear
    sampling, in float32 on [0, 1] and converted back to uint8 as ``convert_image_dtype`` does
    (x 255.5, truncated). (H, W, 3) uint8 -> (H, W, 3) uint8."""
    h, w = image.shape[:2]
    x = image.astype(np.float32) * np.float32(1.0 / 255.0)
    side = np.clip(np.sqrt(np.float32(area)), np.float32(0), np.float32(1))
    lo = (np.float32(1) - side) / np.float32(2)
    hi = lo + side

    def coords(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = (hi - lo) * np.float32(n - 1) / np.float32(n - 1)
        pos = lo * np.float32(n - 1) + np.arange(n, dtype=np.float32) * scale
        top = np.floor(pos).astype(np.int64)
        bottom = np.ceil(pos).astype(np.int64)
        return top, bottom, (pos - top).astype(np.float32)

    y0, y1, fy = coords(h)
    x0, x1, fx = coords(w)
    fx = fx[None, :, None]
    top = x[y0][:, x0] + (x[y0][:, x1] - x[y0][:, x0]) * fx
    bottom = x[y1][:, x0] + (x[y1][:, x1] - x[y1][:, x0]) * fx
    out = top + (bottom - top) * fy[:, None, None]
    out = np.clip(out, 0.0, 1.0) * np.float32(255.5)
    return np.clip(out, 0, 255).astype(np.uint8)


def prepare_image(image: np.ndarray, size: int | None = POLICY_IMAGE_SIZE, crop: bool = True) -> np.ndarray:
    """An upright camera frame as an OFT policy sees it: :func:`resize_for_policy` to ``size`` (None: keep
    the frame as is), then :func:`center_crop` when ``crop`` (OFT ``center_crop=True``, used because
    training applied random 90%-area crops)."""
    if size is not None and image.shape[:2] != (size, size):
        image = resize_for_policy(image, size)
    return center_crop(image) if crop else image
