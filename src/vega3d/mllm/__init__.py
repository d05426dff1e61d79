"""VEGA-3D on Qwen2.5-VL: the model, data, training, checkpoints and inference.

- :class:`Vega3DQwen` / :class:`Vega3DConfig` — Qwen2.5-VL with simulator features fused
  into its visual tokens (``vega3d.mllm.model``), small checkpoints (``.checkpoint``).
- :class:`Vega3DProcessor` — tokenizer + torchvision-free image/video preprocessing.
- ``vega3d.mllm.data`` — LLaVA-style conversation data over videos / frame folders.
- ``vega3d.mllm.family`` — the family's part of ``vega3d train`` (the loop: ``vega3d.training``).
- :class:`Answerer` — batched question answering (``vega3d ask``).
- ``vega3d.standin.qwen`` — a tiny random-weight Qwen2.5-VL stand-in on disk.

See docs/mllm.md.
"""

import importlib

_EXPORTS = {
    "Answerer": "vega3d.mllm.infer",
    "Vega3DConfig": "vega3d.mllm.config",
    "Vega3DProcessor": "vega3d.mllm.processing",
    "Vega3DQwen": "vega3d.mllm.model",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):  # lazy, so that `vega3d --help` (which imports vega3d.mllm.cli) stays fast
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vega3d.mllm' has no attribute {name!r}")
