"""Headless LIBERO evaluation with the OpenVLA-OFT protocol (optional extra ``libero``).

- :mod:`vega3d.libero.protocol`: suites, episode limits and the pure functions of the protocol
  (image flip, proprio, gripper handling, (un)normalisation, the training resize and centre crop);
- :mod:`vega3d.libero.policies`: the :class:`Policy` interface, ``random``/``zero`` smoke
  policies, :func:`load_policy` (where the OpenVLA-OFT loader plugs in);
- :mod:`vega3d.libero.runner`: :func:`evaluate` — worker processes, one simulator each,
  resumable per episode (JSONL), an MP4 per episode, results with Wilson intervals;
- :mod:`vega3d.libero.results`: Wilson intervals, per-task/suite/seed tables;
- :mod:`vega3d.libero.dataset`: a LeRobot-format (v3.0) writer and a reader (v2.x/v3.0) without lerobot;
- :mod:`vega3d.libero.env`: importing the simulator with its traps handled.

Only :mod:`~vega3d.libero.env` and the workers import the simulator; importing this package
needs numpy only. See docs/libero.md.
"""

from vega3d.libero.policies import EpisodeInfo, Policy, RandomPolicy, ZeroPolicy, load_policy
from vega3d.libero.protocol import MAX_STEPS, SUITES
from vega3d.libero.results import wilson_interval
from vega3d.libero.runner import EvalConfig, evaluate, make_config

__all__ = [
    "MAX_STEPS",
    "SUITES",
    "EpisodeInfo",
    "EvalConfig",
    "Policy",
    "RandomPolicy",
    "ZeroPolicy",
    "evaluate",
    "load_policy",
    "make_config",
    "wilson_interval",
]
