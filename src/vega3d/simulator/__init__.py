"""The generative branch: Wan2.1 as a latent world simulator.

``flow_noise_level`` (noise.py) gives the DiT timestep and sigma; ``WanWorldSimulator``
(simulator.py) turns frames into dense DiT-block features. Names load lazily so that
``import vega3d.simulator`` stays cheap (the CLI imports it at start-up).
"""

from __future__ import annotations

from vega3d.simulator.noise import flow_noise_level

_LAZY = {
    "WanWorldSimulator": "vega3d.simulator.simulator",
    "SimulatorConfig": "vega3d.simulator.simulator",
    "ClipFeatures": "vega3d.simulator.simulator",
    "FrameLatents": "vega3d.simulator.simulator",
    # checkpoint loading (layouts.py), the empty-prompt context (prompt.py)
    "WanComponents": "vega3d.simulator.layouts",
    "load_wan_components": "vega3d.simulator.layouts",
    "open_wan_folder": "vega3d.simulator.layouts",
    "detect_layout": "vega3d.simulator.layouts",
    "load_prompt_embedding": "vega3d.simulator.prompt",
    "save_prompt_embedding": "vega3d.simulator.prompt",
    "encode_prompt": "vega3d.simulator.prompt",
    "pad_prompt_embedding": "vega3d.simulator.prompt",
}

__all__ = ["flow_noise_level", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vega3d.simulator' has no attribute {name!r}")
