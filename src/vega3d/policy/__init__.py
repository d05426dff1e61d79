"""OpenVLA-OFT on transformers + the generative branch (issue 13). See docs/policy.md.

- :mod:`vega3d.policy.folder` — a released OpenVLA-OFT folder checked and described (no weights read);
- :mod:`vega3d.policy.vision` — the fused DINOv2 + SigLIP backbone on transformers' ViTs, timm key maps;
- :mod:`vega3d.policy.heads`, :mod:`vega3d.policy.model` — projector, proprio projector, L1 action head;
  :class:`OpenVLAOFT`: the sequence with bidirectional attention and parallel decoding;
- :mod:`vega3d.policy.released` — the released weights in and out, strictly;
- :mod:`vega3d.policy.branch` — Wan features fused by a zero-initialised per-token gate (vega3d's design);
- :mod:`vega3d.policy.vla` — :class:`VLAPolicy`: base + LoRA + branch, small checkpoints;
- :mod:`vega3d.policy.policy` — :class:`OFTPolicy` for the LIBERO harness (``vega3d libero-eval --policy FOLDER``);
- :mod:`vega3d.policy.data`, :mod:`vega3d.policy.family` — LeRobot-format training data and the
  ``openvla_oft`` family of ``vega3d train``.
"""

import importlib

_EXPORTS = {
    "OFTPolicy": "vega3d.policy.policy",
    "OpenVLAOFT": "vega3d.policy.model",
    "PolicyConfig": "vega3d.policy.config",
    "VLAPolicy": "vega3d.policy.vla",
    "open_oft_folder": "vega3d.policy.folder",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):  # lazy: importing vega3d.policy stays cheap
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vega3d.policy' has no attribute {name!r}")
