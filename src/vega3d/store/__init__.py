"""Feature store: features computed once per (item, frame set, extraction config), stored, streamed.

- :class:`FeatureStore` reads a store (``get(item_id) -> (features (N, h, w, C), frame_indices)``).
- :class:`FeatureDataset` serves (item id, frame indices) requests to a PyTorch ``DataLoader``.
- :class:`StoreWriter` writes items crash-safely; :func:`extract_to_store` runs an extractor
  over inputs (scan folders, videos, frame folders; :func:`discover_inputs`), resumable and
  distributed (``vega3d extract``).
- :class:`OnlineFeatureCache` computes features on demand behind an LRU bounded by bytes (and an
  optional feature-store tier on disk); :class:`CachedExtractor` puts one in front of an extractor.
- :class:`ClipExtractor` stores clip-mode features (one row per latent frame).

The on-disk layout and its crash-safety protocol are described in ``vega3d.store.layout``
and docs/store.md. Names load lazily so that ``import vega3d.store`` (done by the CLI at
start-up) stays cheap.
"""

from __future__ import annotations

_LAZY = {
    "ClipExtractor": "vega3d.store.clip",
    "ExtractSummary": "vega3d.store.extract",
    "extract_to_store": "vega3d.store.extract",
    "discover_inputs": "vega3d.store.inputs",
    "load_frames": "vega3d.store.inputs",
    "FeatureDataset": "vega3d.store.loader",
    "OnlineFeatureCache": "vega3d.store.online",
    "CachedExtractor": "vega3d.store.online",
    "with_feature_cache": "vega3d.store.online",
    "FeatureStore": "vega3d.store.store",
    "StoreWriter": "vega3d.store.writer",
    "make_store_config": "vega3d.store.writer",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vega3d.store' has no attribute {name!r}")
