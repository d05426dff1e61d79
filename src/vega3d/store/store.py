"""Reading a feature store: :class:`FeatureStore` (the layout is described in ``vega3d.store.layout``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from vega3d.config import parse
from vega3d.errors import Vega3DError
from vega3d.files import file_sha256, read_json
from vega3d.store import layout
from vega3d.store.writer import check_store_config, extraction_config_of


class FeatureStore:
    """Features written by ``vega3d extract`` (or :class:`vega3d.store.StoreWriter`), read lazily.

    ``expected_config``: if given, the store must have been written with it, else
    :class:`Vega3DError` lists the differences. It may be a full store config (a dict with
    ``"format"``, as :attr:`config`), or an extraction config / extractor (e.g. a
    ``WanWorldSimulator`` or its ``config``), which is compared with the stored extraction
    config only.

    ``verify``: check each shard's sha256 against its record the first time this object
    reads it (a corrupted or truncated shard raises :class:`Vega3DError` naming the file).

    Shards are opened per access with safetensors' memory-mapped ``safe_open`` and no file
    handle is kept, so a store can be pickled into ``DataLoader`` worker processes.
    """

    def __init__(self, path: str | Path, *, expected_config: Any = None, verify: bool = True):
        self.path = Path(path)
        store_file = self.path / layout.STORE_FILE
        if not store_file.is_file():
            raise Vega3DError(
                f"feature store: {self.path} is not a feature store (no {layout.STORE_FILE}); "
                "write one with `vega3d extract`"
            )
        self.config: dict = read_json(store_file, "feature store config")
        found = self.config if isinstance(self.config, dict) else {}
        if (found.get("format"), found.get("version")) != (layout.FORMAT, layout.VERSION):
            raise Vega3DError(
                f"feature store: {store_file} has format {found.get('format')!r}, format version "
                f"{found.get('version')!r}; this vega3d reads {layout.FORMAT!r}, format version {layout.VERSION}"
            )
        parse(layout.StoreConfig, self.config, f"feature store: {store_file}")
        if expected_config is not None:
            if isinstance(expected_config, dict) and "format" in expected_config:  # a full store config
                stored, expected = self.config, expected_config
            else:  # an extraction config or an extractor
                stored, expected = self.extraction_config, extraction_config_of(expected_config)
            check_store_config(stored, expected, self.path)
        self.config_sha256 = layout.config_sha256(self.config)
        self.verify = verify
        self._verified: set[str] = set()
        self.refresh()

    # ------------------------------------------------------------------ index
    def refresh(self) -> None:
        """(Re)load the index. The records in ``records/`` are the truth; ``index.json`` (merged
        at the end of a run) saves reading those not changed since it was written. A store
        without ``records/`` (e.g. shipped as ``store.json`` + ``index.json`` + ``shards/``) is
        read from ``index.json`` alone."""
        index_file = self.path / layout.INDEX_FILE
        indexed, index_mtime = {}, -1
        if index_file.is_file():
            index_mtime = index_file.stat().st_mtime_ns
            index = parse(layout.Index, read_json(index_file, "feature store index"), f"feature store: {index_file}")
            indexed = {key: (record, f"{index_file} entry {key!r}") for key, record in index.entries.items()}
        record_dir = self.path / layout.RECORD_DIR
        found = _records(record_dir, indexed, index_mtime) if record_dir.is_dir() else indexed
        self._entries = {
            key: layout.check_record(record, where, self.config_sha256)
            for key, (record, where) in sorted(found.items())
        }
        self._by_id: dict[str, list[str]] = {}
        for key, record in self._entries.items():
            self._by_id.setdefault(record["item_id"], []).append(key)

    @property
    def extraction_config(self) -> dict:
        """The extractor's config the features were computed with (``config["extraction"]``)."""
        return self.config["extraction"]

    def ids(self) -> list[str]:
        """Item ids in the store, sorted."""
        return sorted(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._by_id

    def entries(self, item_id: str | None = None) -> list[dict]:
        """Index records (all, or those of ``item_id``): frame indices, shape, dtype, bytes, sha256, source..."""
        if item_id is None:
            return list(self._entries.values())
        return [self._entries[k] for k in self._by_id.get(item_id, [])]

    def total_bytes(self) -> int:
        """Bytes of all shards."""
        return sum(r["bytes"] for r in self._entries.values())

    # ------------------------------------------------------------------ read
    def _find(self, item_id: str, frame_indices: Sequence[int] | None) -> tuple[dict, list[int]]:
        """The entry of ``item_id`` holding ``frame_indices`` (None: its only entry) and their rows in it."""
        keys = self._by_id.get(item_id)
        if not keys:
            raise Vega3DError(f"feature store {self.path}: no item {item_id!r} ({len(self)} items stored)")
        records = [self._entries[k] for k in keys]
        sets = [r["frame_indices"] for r in records]
        if frame_indices is None:
            if len(records) > 1:
                raise Vega3DError(
                    f"feature store {self.path}: item {item_id!r} is stored with {len(sets)} frame sets "
                    f"{sets[:3]}...; pass frame_indices to choose"
                )
            return records[0], list(range(len(sets[0])))
        wanted = [int(i) for i in frame_indices]
        if not wanted:
            raise Vega3DError(f"feature store {self.path}: frame_indices for item {item_id!r} is empty")
        for r in sorted(records, key=lambda r: len(r["frame_indices"])):
            pos = {f: p for p, f in enumerate(r["frame_indices"])}
            if all(f in pos for f in wanted):
                return r, [pos[f] for f in wanted]
        raise Vega3DError(
            f"feature store {self.path}: item {item_id!r} has no entry holding frames {wanted} "
            f"(stored frame sets: {sets[:3]})"
        )

    def _check_shard(self, record: dict) -> Path:
        shard = self.path / record["shard"]
        if not shard.is_file():
            raise Vega3DError(f"feature store: shard {shard} of item {record['item_id']!r} is missing")
        if self.verify and record["shard"] not in self._verified:
            digest = file_sha256(shard)
            if digest != record["sha256"]:
                raise Vega3DError(
                    f"feature store: shard {shard} of item {record['item_id']!r} is corrupted (sha256 {digest[:16]}..., "
                    f"recorded {record['sha256'][:16]}...). Delete it and {layout.RECORD_DIR}/{shard.stem}.json, "
                    "then rerun `vega3d extract` to recompute it"
                )
            self._verified.add(record["shard"])
        return shard

    def get(self, item_id: str, frame_indices: Sequence[int] | None = None) -> tuple[torch.Tensor, list[int]]:
        """Features of ``item_id``: ``(features (N, h, w, C), frame_indices)``.

        ``frame_indices`` (positions in the input's frame list) picks frames from a stored
        entry holding all of them, reading only those rows from the memory-mapped shard;
        None returns the item's one stored entry. Features come in the stored dtype
        (``config["storage"]["precision"]``), exactly as written.
        """
        record, rows = self._find(item_id, frame_indices)
        shard = self._check_shard(record)
        try:
            with safe_open(str(shard), framework="pt") as f:
                rows_slice = f.get_slice("features")
                if rows == list(range(rows[0], rows[0] + len(rows))):  # one contiguous read
                    x = rows_slice[rows[0] : rows[0] + len(rows)]
                else:
                    x = torch.cat([rows_slice[r : r + 1] for r in rows])
        except (SafetensorError, OSError, RuntimeError) as err:
            raise Vega3DError(f"feature store: shard {shard} of item {item_id!r} cannot be read ({err})") from None
        # the shard and its record come from one write (and verify checked the shard's sha256)
        assert list(x.shape) == [len(rows)] + record["shape"][1:] and str(x.dtype) == f"torch.{record['dtype']}", shard
        return x, [record["frame_indices"][r] for r in rows]

    def verify_all(self) -> list[str]:
        """Check every shard's sha256; returns the problems found (empty when all are intact)."""
        problems = []
        for record in self._entries.values():
            self._verified.discard(record["shard"])
            try:
                self._check_shard(record)
            except Vega3DError as err:
                problems.append(str(err))
        return problems

    def __repr__(self) -> str:
        s = self.config["storage"]
        return (
            f"FeatureStore({str(self.path)!r}, {len(self)} items, {len(self._entries)} entries, "
            f"{s['precision']}, pool={s['pool']}, {self.total_bytes() / 2**20:.1f} MiB)"
        )


def _records(record_dir: Path, indexed: dict[str, tuple], index_mtime: int) -> dict[str, tuple]:
    """``{key: (record, where)}`` of every record in ``record_dir``: ``indexed``'s (from ``index.json``)
    when the file has not changed since the index was written, else read from the file."""
    out = {}
    for e in os.scandir(record_dir):
        if not e.name.endswith(".json") or e.name.startswith(layout.TMP_PREFIX):
            continue
        key = e.name[: -len(".json")]
        if key in indexed and e.stat().st_mtime_ns <= index_mtime:
            out[key] = indexed[key]
        else:
            out[key] = (read_json(Path(e.path), "feature store record"), e.path)
    return out
