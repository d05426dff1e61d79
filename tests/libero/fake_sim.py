"""A stand-in for LIBERO with the module interface of ``vega3d.libero.env``, for harness tests without the simulator.

``FakeEnv.reset`` draws a "fixture offset" from numpy's global generator, as LIBERO's placement
samplers do, and shows it in the observation (agentview brightness, eef x), so tests can check
that every episode saw the generator state of OpenVLA-OFT's sequential loop. An episode whose
initial state index is even succeeds 3 policy steps after the settle steps.

Policies (``--policy tests.libero.fake_sim:logging_policy``): zero actions; each episode's first
observation is appended to the file named by ``$FAKE_SIM_LOG``; ``$FAKE_SIM_CRASH`` =
``raise:E`` raises in episode E, ``die:E`` kills the worker process in episode E.
"""

import json
import os

import numpy as np

from vega3d.libero.policies import ZeroPolicy

SETTLE = 10


def require_libero() -> None:
    pass


def resolve_gl(gl: str) -> str:
    return "fake"


def suite_tasks(suite: str) -> list[tuple[str, str]]:
    return [(f"fake_task_{i}", f"do fake thing {i}") for i in range(10)]


def import_simulator(gl: str):
    return FakeEnv


def probe_gl() -> None:
    pass


def init_states(suite: str, task: int) -> np.ndarray:
    return np.repeat(np.arange(50, dtype=np.float64)[:, None], 3, axis=1)


def make_env(env_class, suite: str, task: int, camera_size: int):
    return env_class(task, camera_size)


def step(env, action):
    obs, _reward, done, _info = env.step(action)
    return obs, done


class FakeEnv:
    def __init__(self, task: int, size: int):
        self.task, self.size = task, size
        self.fixture, self.state, self.t = 0.0, np.zeros(3), 0

    def seed(self, seed: int) -> None:
        np.random.seed(seed)

    def reset(self) -> None:
        self.fixture = float(np.random.random())
        self.t = 0

    def set_init_state(self, state) -> dict:
        self.state, self.t = np.asarray(state), 0
        return self._obs()

    def step(self, action):
        self.t += 1
        done = int(self.state[0]) % 2 == 0 and self.t >= SETTLE + 3
        return self._obs(), 0.0, done, {}

    def _obs(self) -> dict:
        level = int(self.fixture * 255)
        return {
            "agentview_image": np.full((self.size, self.size, 3), level, np.uint8),
            "robot0_eye_in_hand_image": np.full((self.size, self.size, 3), self.t % 256, np.uint8),
            "robot0_eef_pos": np.array([self.fixture, self.state[0], self.t]),
            "robot0_eef_quat": np.array([0.0, 0.0, 0.0, 1.0]),
            "robot0_gripper_qpos": np.array([0.04, -0.04]),
        }

    def close(self) -> None:
        pass


class LoggingPolicy(ZeroPolicy):
    name = "fake-logging"

    def reset(self, episode) -> None:
        self.episode, self.first = episode, True
        kind, _, which = os.environ.get("FAKE_SIM_CRASH", "").partition(":")
        if which and int(which) == episode.episode:
            if kind == "die":
                os._exit(3)
            if kind == "raise":
                raise RuntimeError(f"policy failure in episode {episode.episode}")

    def act(self, observation: dict) -> np.ndarray:
        if self.first and os.environ.get("FAKE_SIM_LOG"):
            entry = {"seed": self.episode.seed, "task": self.episode.task_id, "episode": self.episode.episode,
                     "fixture": float(observation["proprio"][0]), "pid": os.getpid()}  # fmt: skip
            with open(os.environ["FAKE_SIM_LOG"], "a") as fh:
                fh.write(json.dumps(entry) + "\n")
        self.first = False
        return super().act(observation)


def logging_policy() -> LoggingPolicy:
    return LoggingPolicy(chunk=4)
