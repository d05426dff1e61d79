"""The released VEGA-3D spatial-reasoning model: read it, judge its DiT, convert it (docs/release.md).

- :mod:`.folder` — the folder's layout: :func:`open_release` (index + safetensors headers, checked),
  :func:`read_tensors` (one at a time), the parts and config attributes;
- :mod:`.inspect` — :func:`inspect_release`: parts, attributes and the DiT verdict
  (``dit_reinitialised``), behind ``vega3d inspect-release``;
- :mod:`.convert` — :func:`convert_release`: a vega3d checkpoint + the DiT as a Wan folder,
  behind ``vega3d convert-release``;
- :mod:`.frames` — :func:`~.frames.preprocess_release_frames`: frames prepared as the release's
  images (``Answerer(..., frames_as="images")``).
"""

from __future__ import annotations

import importlib

from vega3d.mllm.release.folder import (
    DIT_PREFIX,
    FUSION_NAMES,
    FUSION_PREFIX,
    MERGER_PREFIX,
    RELEASE_EXTRA_PREFIXES,
    ReleaseFolder,
    is_release_config,
    open_release,
    read_tensors,
)

_LAZY = {"inspect_release": "vega3d.mllm.release.inspect", "convert_release": "vega3d.mllm.release.convert"}

__all__ = [
    "DIT_PREFIX",
    "FUSION_NAMES",
    "FUSION_PREFIX",
    "MERGER_PREFIX",
    "RELEASE_EXTRA_PREFIXES",
    "ReleaseFolder",
    "is_release_config",
    "open_release",
    "read_tensors",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vega3d.mllm.release' has no attribute {name!r}")
