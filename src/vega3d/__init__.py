"""vega3d: implicit 3D priors of video generation models for multimodal LLMs.

A clean implementation of VEGA-3D (arXiv 2603.19235). Subpackages, one concept each:

- ``vega3d.simulator`` — the frozen Wan2.1 "latent world simulator" (frames → DiT block features)
- ``vega3d.scenes``    — posed RGB-D scenes, loaders, frame sampling, synthetic scenes
- ``vega3d.encoders``  — one frames → feature-grid interface over many backbones
- ``vega3d.probe``     — multi-view correspondence scores
- ``vega3d.fusion``    — adaptive gated fusion, projector, grid alignment
- ``vega3d.store``     — on-disk feature store and distributed extraction
- ``vega3d.mllm``      — Qwen2.5-VL with the generative branch: train, save, load, answer
- ``vega3d.eval``      — benchmark metrics (ScanRefer, Multi3DRefer, Scan2Cap, ScanQA, SQA3D, VSI-Bench)
- ``vega3d.standin``   — tiny random-weight stand-ins of the real models, their marker and notice

Shared by all: ``vega3d.media`` (reading videos and frame/scan folders), ``vega3d.files`` (JSON,
atomic writes, content hashes), ``vega3d.config`` (the pydantic config base), ``vega3d.devices``
(devices, dtypes), ``vega3d.progress`` (progress bars), ``vega3d.grids`` (the feature-grid cells).
"""

from vega3d.errors import Vega3DError

__version__ = "0.1.0"
__all__ = ["Vega3DError", "__version__"]
