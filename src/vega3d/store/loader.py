"""A PyTorch ``Dataset`` over a feature store: features for (item id, frame indices) requests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from vega3d.errors import Vega3DError
from vega3d.store.store import FeatureStore

Request = str | tuple[str, Sequence[int] | None]


class FeatureDataset(Dataset):
    """Item ``k`` is ``{"item_id": str, "frame_indices": LongTensor (N,), "features": (N, h, w, C)}``
    for ``requests[k]``: an item id (its stored frames) or ``(item_id, frame_indices)``.

    Reads go through :meth:`FeatureStore.get`: each access opens the shard memory-mapped and
    reads only the requested frame rows, so the dataset is cheap to pickle and safe in
    ``DataLoader`` workers. ``requests=None`` means every item id in the store. Features
    come in the stored dtype unless ``dtype`` is given. Batching items with different N
    needs a ``collate_fn`` of your own.
    """

    def __init__(
        self,
        store: FeatureStore | str | Path,
        requests: Sequence[Request] | None = None,
        *,
        dtype: torch.dtype | None = None,
    ):
        self.store = store if isinstance(store, FeatureStore) else FeatureStore(store)
        if requests is None:
            requests = self.store.ids()
        self.requests: list[tuple[str, list[int] | None]] = []
        for r in requests:
            item_id, frames = (r, None) if isinstance(r, str) else (r[0], r[1])
            if item_id not in self.store:
                raise Vega3DError(f"FeatureDataset: item {item_id!r} is not in store {self.store.path}")
            self.requests.append((item_id, None if frames is None else [int(f) for f in frames]))
        self.dtype = dtype

    def __len__(self) -> int:
        return len(self.requests)

    def __getitem__(self, k: int) -> dict:
        item_id, frames = self.requests[k]
        features, indices = self.store.get(item_id, frames)
        if self.dtype is not None:
            features = features.to(self.dtype)
        return {"item_id": item_id, "frame_indices": torch.tensor(indices, dtype=torch.long), "features": features}
