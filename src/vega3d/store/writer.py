"""Writing items into a feature store: :class:`StoreWriter` (layout and crash safety in ``layout``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes

from vega3d.config import is_int
from vega3d.errors import Vega3DError
from vega3d.files import atomic_write_bytes, read_json
from vega3d.grids import resample_grid
from vega3d.store import layout


def extraction_config_of(extractor_or_config: Any) -> dict:
    """The extraction config as plain JSON data: from a dict, a config with ``to_dict()``,
    or an extractor with ``.config`` (a dict or an object with ``to_dict()``)."""
    value = extractor_or_config
    if not isinstance(value, dict) and not hasattr(value, "to_dict") and hasattr(value, "config"):
        value = value.config
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if not isinstance(value, dict):
        raise Vega3DError(
            f"feature store: an extraction config must be a dict or have to_dict(), got {type(value).__name__}"
        )
    return json.loads(layout.canonical_json(value))


def make_store_config(extraction: Any, precision: str = "bf16", pool: Sequence[int] | None = None) -> dict:
    """The full store config (what ``store.json`` holds) for an extraction config and storage choice.

    ``precision``: "bf16", "fp16" or "fp32" (the dtype the features are stored in).
    ``pool``: None, or ``(h, w)``: features are resampled to this grid at write time
    (:func:`vega3d.grids.resample_grid`, e.g. to the semantic token grid).
    """
    if precision not in layout.PRECISIONS:
        raise Vega3DError(f"feature store: precision must be one of {sorted(layout.PRECISIONS)}, got {precision!r}")
    if pool is not None and not (isinstance(pool, Sequence) and len(pool) == 2 and all(is_int(v, 1) for v in pool)):
        raise Vega3DError(f"feature store: pool must be two positive integers (h, w) or None, got {pool!r}")
    pool = None if pool is None else [int(pool[0]), int(pool[1])]
    return {
        "format": layout.FORMAT,
        "version": layout.VERSION,
        "extraction": extraction_config_of(extraction),
        "storage": {"precision": precision, "pool": pool},
    }


def check_store_config(stored: dict, expected: dict, where: Path) -> None:
    """Raise :class:`Vega3DError` listing the differences when two store configs differ."""
    diffs = layout.config_differences(stored, expected)
    if diffs:
        raise Vega3DError(
            f"feature store {where} was written with another config than this one "
            f"({len(diffs)} difference(s): "
            + "; ".join(diffs[:8])
            + ("; ..." if len(diffs) > 8 else "")
            + "). Use another store folder, or the settings it was written with."
        )


def prepare_features(features: torch.Tensor, storage: dict, num_frames: int, what: str) -> torch.Tensor:
    """Features (N, h, w, C) of ``num_frames`` frames as a store with ``storage`` (``{"precision",
    "pool"}``) keeps them: pooled to ``pool`` (in float32, :func:`vega3d.grids.resample_grid`) and
    cast to ``precision``, contiguous, on the CPU. Another N, or NaN or inf features, are an error
    naming ``what`` (the item)."""
    shape = tuple(getattr(features, "shape", ()))
    if not isinstance(features, torch.Tensor) or features.ndim != 4:
        raise Vega3DError(f"{what}: features must be a tensor (N, h, w, C), got {type(features).__name__} {shape}")
    if shape[0] != num_frames:
        raise Vega3DError(
            f"{what}: {num_frames} frame indices but features of shape {shape} (expected N = {num_frames})"
        )
    if not bool(torch.isfinite(features).all()):
        raise Vega3DError(f"{what}: features of shape {shape} contain NaN or inf")
    x = features.detach().to("cpu")
    if storage["pool"] is not None:
        x = resample_grid(x.float(), tuple(storage["pool"]))
    return x.to(getattr(torch, layout.PRECISIONS[storage["precision"]])).contiguous()


class StoreWriter:
    """Adds items to the store at ``path``; a new store (``store.json``, ``shards/``,
    ``records/``) is created by the first :meth:`write` (or :meth:`write_index`), so a run in
    which every item fails leaves no store behind.

    Opening an existing store with another ``config`` raises :class:`Vega3DError`, and so does
    a ``path`` that is a file or a non-empty folder without ``store.json``. :meth:`write` is
    crash-safe (see ``vega3d.store.layout``); several processes may write disjoint items into
    the same store at once (the distributed extraction does this).
    """

    def __init__(self, path: str | Path, config: dict):
        self.path = Path(path)
        self.config = config
        self.config_sha256 = layout.config_sha256(config)
        store_file = self.path / layout.STORE_FILE
        if store_file.is_file():
            check_store_config(read_json(store_file, "feature store config"), config, self.path)
        elif self.path.exists() and (
            not self.path.is_dir() or any(not p.name.startswith(layout.TMP_PREFIX) for p in self.path.iterdir())
        ):
            what = "a file" if not self.path.is_dir() else f"a non-empty folder without {layout.STORE_FILE}"
            raise Vega3DError(
                f"feature store: {self.path} is {what}; refusing to write a store into it (give a new or empty folder)"
            )

    @property
    def exists(self) -> bool:
        """True once the store has been created (by this writer or another process)."""
        return (self.path / layout.STORE_FILE).is_file()

    def _create(self) -> None:
        """Create the store if it is not there yet (idempotent; processes may race: each writes
        the same ``store.json`` atomically). ``store.json`` first: the folder is a store from then on."""
        if not self.exists:
            layout.write_json(self.path / layout.STORE_FILE, self.config)
        (self.path / layout.SHARD_DIR).mkdir(exist_ok=True)
        (self.path / layout.RECORD_DIR).mkdir(exist_ok=True)

    # ------------------------------------------------------------------ records
    def records(self) -> dict[str, dict]:
        """All committed records, by key (read from ``records/``; none before the store exists)."""
        out = {}
        for p in sorted((self.path / layout.RECORD_DIR).glob("*.json")):
            if p.name.startswith(layout.TMP_PREFIX):
                continue
            out[p.stem] = layout.check_record(read_json(p, "feature store record"), str(p))
        return out

    def is_done(self, record: dict) -> bool:
        """True when a record's shard is present with the recorded size (a cheap resume check;
        reading verifies the sha256)."""
        shard = self.path / record["shard"]
        return shard.is_file() and shard.stat().st_size == record["bytes"]

    # ------------------------------------------------------------------ write
    def write(
        self,
        item_id: str,
        frame_indices: Sequence[int],
        features: torch.Tensor,
        *,
        selection: str = "explicit",
        num_available: int | None = None,
        kind: str = "tensor",
        source: str = "",
        clip_frames: Sequence[int] | None = None,
    ) -> dict:
        """Store ``features`` (N, h, w, C) of ``item_id`` at ``frame_indices`` (N positions); returns the record.

        The shard is written and made durable before the record, so a crash at any point
        leaves either the complete entry or no entry. ``selection`` names how the frames
        were chosen (e.g. ``uniform:32``); a rerun with the same item and selection skips it.
        ``clip_frames``: in clip mode (``vega3d.store.clip``) the clip's frames; ``frame_indices``
        then label the rows (latent frames) and the entry is keyed by the clip's frames.
        """
        if not isinstance(item_id, str) or not item_id:
            raise Vega3DError(f"feature store: item id must be a non-empty string, got {item_id!r}")
        frame_indices = [int(i) for i in frame_indices]
        stored = prepare_features(
            features, self.config["storage"], len(frame_indices), f"feature store: item {item_id!r}"
        )
        extra = {} if clip_frames is None else {"clip_frames": [int(i) for i in clip_frames]}
        key = layout.entry_key(item_id, extra.get("clip_frames", frame_indices))
        meta = layout.canonical_json(
            {"item_id": item_id, "frame_indices": frame_indices, "config_sha256": self.config_sha256, **extra}
        )
        data = safetensors_bytes({"features": stored}, metadata={"vega3d": meta})
        shard = f"{layout.SHARD_DIR}/{key}.safetensors"
        self._create()
        atomic_write_bytes(self.path / shard, data)
        record = {
            "item_id": item_id,
            "frame_indices": frame_indices,
            "selection": selection,
            "num_available": int(num_available if num_available is not None else len(frame_indices)),
            "kind": kind,
            "source": str(source),
            "shard": shard,
            "shape": list(stored.shape),
            "dtype": str(stored.dtype).removeprefix("torch."),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "config_sha256": self.config_sha256,
            **extra,
        }
        layout.write_json(self.path / layout.RECORD_DIR / f"{key}.json", record)
        return record

    def write_index(self) -> dict:
        """Merge every committed record into ``index.json`` (atomically); returns the index."""
        self._create()
        records = self.records()
        index = {
            "format": layout.FORMAT,
            "version": layout.VERSION,
            "config_sha256": self.config_sha256,
            "entries": records,
        }
        layout.write_json(self.path / layout.INDEX_FILE, index)
        return index
