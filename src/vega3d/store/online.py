"""Online features: computed on demand by an extractor, kept in an LRU cache bounded by bytes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch

from vega3d.errors import Vega3DError
from vega3d.store.writer import make_store_config, prepare_features


class OnlineFeatureCache:
    """Features computed on the fly by ``extractor`` (``.extract(frames) -> (N, h, w, C)``),
    cached by ``(item_id, frame_indices)`` in least-recently-used order while their total
    size stays within ``max_bytes``.

    Features are stored exactly as a feature store with the same ``precision`` / ``pool``
    would store them, so online and offline training see the same numbers. An entry larger
    than ``max_bytes`` is returned but not cached. (The paper's in-memory cache has no bound;
    this one never holds more than ``max_bytes`` of features.)
    """

    def __init__(self, extractor: Any, max_bytes: int, *, precision: str = "fp32", pool: Sequence[int] | None = None):
        if int(max_bytes) < 0:
            raise Vega3DError(f"OnlineFeatureCache: max_bytes must be >= 0, got {max_bytes}")
        self.extractor = extractor
        self.max_bytes = int(max_bytes)
        self.config = make_store_config(extractor, precision, pool)
        self._entries: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(
        self, item_id: str, frame_indices: Sequence[int], frames: torch.Tensor | Callable[[], torch.Tensor]
    ) -> torch.Tensor:
        """Features (N, h, w, C) of ``item_id`` at ``frame_indices``; ``frames`` (the N frames,
        (N, 3, H, W) float in [0, 1], or a function returning them) is used only on a miss."""
        key = (item_id, tuple(int(i) for i in frame_indices))
        if key in self._entries:
            self.hits += 1
            self._entries.move_to_end(key)
            return self._entries[key]
        self.misses += 1
        x = frames() if callable(frames) else frames
        features = prepare_features(self.extractor.extract(x), self.config["storage"])
        if features.shape[0] != len(key[1]):
            raise Vega3DError(
                f"OnlineFeatureCache: item {item_id!r}: {len(key[1])} frame indices but the extractor "
                f"returned {features.shape[0]} frames"
            )
        size = features.numel() * features.element_size()
        if size <= self.max_bytes:
            while self.bytes + size > self.max_bytes:
                _, old = self._entries.popitem(last=False)
                self.bytes -= old.numel() * old.element_size()
            self._entries[key] = features
            self.bytes += size
        return features
