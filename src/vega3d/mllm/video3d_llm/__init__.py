"""VEGA-3D on Video-3D LLM (LLaVA-Video-7B-Qwen2): the second model family, for ScanRefer,
Multi3DRefer, Scan2Cap, ScanQA and SQA3D (the paper's Table 1). docs/video3d.md.

- :mod:`~vega3d.mllm.video3d_llm.loading` — the base folder in the original LLaVA or the
  transformers layout, strict key / shape / vocabulary checks, the key maps;
- :mod:`~vega3d.mllm.video3d_llm.model` — :class:`Video3DLLM`: visual tokens as Video-3D LLM builds
  them, the generative fusion, 3D positions, ``<ground>`` / ``<coord>``, the InfoNCE head;
- :mod:`~vega3d.mllm.video3d_llm.grounding` — the tokens, :class:`GroundingHead`, :func:`info_nce`;
- :mod:`~vega3d.mllm.video3d_llm.data` — pixels, prompts, the training dataset;
- :mod:`~vega3d.mllm.video3d_llm.family` — ``family: video3d_llm`` for ``vega3d train``;
- :mod:`~vega3d.mllm.video3d_llm.infer` / :mod:`~vega3d.mllm.video3d_llm.evaluate` — answering,
  grounding, captioning; ``vega3d eval-model`` for the five benchmarks.
"""

import importlib

_EXPORTS = {
    "Video3DLLM": "vega3d.mllm.video3d_llm.model",
    "Video3DLLMConfig": "vega3d.mllm.video3d_llm.config",
    "GroundingHead": "vega3d.mllm.video3d_llm.grounding",
    "info_nce": "vega3d.mllm.video3d_llm.grounding",
    "load_base": "vega3d.mllm.video3d_llm.loading",
    "Video3DAnswerer": "vega3d.mllm.video3d_llm.infer",
    "run_benchmark": "vega3d.mllm.video3d_llm.evaluate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vega3d.mllm.video3d_llm' has no attribute {name!r}")
