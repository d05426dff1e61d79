"""Feature store: features computed once per (item, frame set, extraction config), stored, streamed.

- :class:`FeatureStore` reads a store (``get(item_id) -> (features (N, h, w, C), frame_indices)``).
- :class:`FeatureDataset` serves (item id, frame indices) requests to a PyTorch ``DataLoader``.
- :class:`StoreWriter` writes items crash-safely; :func:`extract_to_store` runs an extractor
  over inputs (scan folders, videos, frame folders), resumable and distributed
  (``vega3d extract``).
- :class:`OnlineFeatureCache` computes features on demand behind an LRU bounded by bytes.

The on-disk layout and its crash-safety protocol are described in ``vega3d.store.layout``
and docs/store.md.
"""

from vega3d.store.loader import FeatureDataset
from vega3d.store.online import OnlineFeatureCache
from vega3d.store.store import FeatureStore
from vega3d.store.writer import StoreWriter, make_store_config

__all__ = ["FeatureDataset", "FeatureStore", "OnlineFeatureCache", "StoreWriter", "make_store_config"]
