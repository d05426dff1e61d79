"""What the LIBERO harness drives: the :class:`Policy` protocol, smoke-run policies, and :func:`load_policy`.

A policy is created once per worker process (after the simulator's process starts) and used for
many episodes: :meth:`Policy.reset` at the start of each, then :meth:`Policy.act` whenever the
previous chunk has run out. The observation it gets:

- ``"agentview"``, ``"wrist"``: upright (flipped) uint8 (S, S, 3) frames. S = 256 (the rendered
  size) when ``image_size`` is None; otherwise the frames went through OFT's training resize to
  ``image_size`` (JPEG round trip + antialiased Lanczos-3) and, with ``center_crop``, the
  centre crop of 90 % area (:func:`vega3d.libero.protocol.prepare_image`).
- ``"proprio"``: float64 (8,) = eef position ‖ axis-angle of the eef quaternion ‖ gripper qpos.
- ``"language"``: the task instruction; ``"step"``: policy steps taken so far in the episode.

:meth:`Policy.act` returns a (K, 7) chunk, run open loop. With ``action_format = "openvla"`` the
gripper column is in the OpenVLA dataset convention ([0, 1], 1 = open) and the harness
binarises and inverts it as OFT does (:func:`vega3d.libero.protocol.openvla_gripper_to_env`); with
``"libero"`` the rows go to ``env.step`` unchanged (gripper -1 = open, +1 = close).

``--policy`` specs (:func:`load_policy`): ``random``, ``zero``, ``module:function`` (a factory
returning a :class:`Policy`, imported in each worker), or a checkpoint folder: a released
OpenVLA-OFT folder or a vega3d policy checkpoint (:class:`vega3d.policy.policy.OFTPolicy`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from vega3d.errors import Vega3DError
from vega3d.libero.protocol import ACTION_DIM

#: Actions per chunk of the smoke policies (OpenVLA-OFT's LIBERO chunk).
SMOKE_CHUNK = 8


@dataclass(frozen=True)
class EpisodeInfo:
    """Which episode is starting: suite, task id and name, instruction, episode (= initial-state) index, run seed."""

    suite: str
    task_id: int
    task_name: str
    language: str
    episode: int
    seed: int


@runtime_checkable
class Policy(Protocol):
    """The interface the harness drives (see the module docstring for the observation and actions)."""

    name: str
    image_size: int | None  # None: raw upright 256-px frames; else OFT's training resize to this side
    center_crop: bool  # after the resize, the 90 %-area centre crop (OFT center_crop=True)
    action_format: Literal["openvla", "libero"]

    def reset(self, episode: EpisodeInfo) -> None:
        """Called before the first :meth:`act` of every episode."""

    def act(self, observation: dict) -> np.ndarray:
        """A (K, 7) action chunk for the current observation."""


class ZeroPolicy:
    """All-zero actions in LIBERO's convention: the arm holds still and the gripper keeps its state."""

    name = "zero"
    image_size = None
    center_crop = False
    action_format = "libero"

    def __init__(self, chunk: int = SMOKE_CHUNK):
        self.chunk = chunk

    def reset(self, episode: EpisodeInfo) -> None:
        pass

    def act(self, observation: dict) -> np.ndarray:
        return np.zeros((self.chunk, ACTION_DIM))


class RandomPolicy:
    """Uniform actions in [-scale, scale] for the arm and a random open/close gripper, from a
    generator seeded by (run seed, task, episode): the same episode draws the same actions in any
    worker and on resume."""

    name = "random"
    image_size = None
    center_crop = False
    action_format = "libero"

    def __init__(self, chunk: int = SMOKE_CHUNK, scale: float = 1.0):
        self.chunk, self.scale = chunk, scale
        self.rng = np.random.default_rng(0)

    def reset(self, episode: EpisodeInfo) -> None:
        self.rng = np.random.default_rng([episode.seed, episode.task_id, episode.episode])

    def act(self, observation: dict) -> np.ndarray:
        arm = self.rng.uniform(-self.scale, self.scale, size=(self.chunk, ACTION_DIM - 1))
        gripper = self.rng.choice([-1.0, 1.0], size=(self.chunk, 1))
        return np.concatenate([arm, gripper], axis=1)


BUILTIN = {"random": RandomPolicy, "zero": ZeroPolicy}


def check_policy_spec(spec: str, suite: str | None = None) -> str:
    """Check a ``--policy`` spec without loading weights (done before any episode starts); returns its kind:
    ``"builtin"``, ``"factory"`` or ``"checkpoint"``. A :class:`Vega3DError` says what is wrong. For a
    checkpoint folder (an OpenVLA-OFT folder or a vega3d policy checkpoint) its files are checked, and with
    ``suite`` that its statistics cover the suite (:func:`vega3d.policy.policy.check_policy_folder`)."""
    if spec in BUILTIN:
        return "builtin"
    path = Path(spec).expanduser()
    if ":" in spec and not path.exists():
        module, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
            problem = None if callable(factory) else f"{attr} is not callable"
        except (ImportError, AttributeError) as err:
            problem = f"{type(err).__name__}: {err}"
        if problem:
            raise Vega3DError(f"--policy {spec}: cannot import the factory ({problem}); expected a function "
                              "returning a Policy")  # fmt: skip
        return "factory"
    if not path.is_dir():
        raise Vega3DError(
            f"--policy {spec}: {'is a file' if path.exists() else 'no such checkpoint folder'}; expected "
            f"{', '.join(BUILTIN)}, module:function, or an OpenVLA-OFT checkpoint folder"
        )
    from vega3d.policy.policy import check_policy_folder

    try:
        check_policy_folder(path, suite)
    except Vega3DError as err:
        raise Vega3DError(f"--policy {spec}: {err}") from None
    return "checkpoint"


def load_policy(spec: str) -> Policy:
    """The policy for a ``--policy`` spec (see the module docstring); checked by :func:`check_policy_spec`."""
    kind = check_policy_spec(spec)
    if kind == "builtin":
        policy = BUILTIN[spec]()
    elif kind == "factory":
        module, _, attr = spec.partition(":")
        policy = getattr(importlib.import_module(module), attr)()
    else:  # an OpenVLA-OFT folder or a vega3d policy checkpoint
        from vega3d.policy.policy import OFTPolicy

        policy = OFTPolicy.from_pretrained(Path(spec).expanduser())
    return check_policy(policy, spec)


def check_policy(policy, where: str) -> Policy:
    """``policy`` if it has the :class:`Policy` attributes with valid values; a :class:`Vega3DError` otherwise."""
    attributes = ("name", "image_size", "center_crop", "action_format", "reset", "act")
    missing = [a for a in attributes if not hasattr(policy, a)]
    action_format, size = getattr(policy, "action_format", None), getattr(policy, "image_size", None)
    valid_size = size is None or isinstance(size, int) and size >= 8
    if missing or action_format not in ("openvla", "libero") or not valid_size:
        raise Vega3DError(
            f"policy {where}: {type(policy).__name__} lacks {missing or 'nothing'}, action_format {action_format!r}, "
            f"image_size {size!r}; expected a vega3d.libero.Policy: action_format 'openvla' or 'libero', image_size "
            "None or an int >= 8"
        )
    return policy
