"""The on-disk layout of a feature store, and the crash-safe way every file in it is written.

A store is one folder::

    STORE/
      store.json                  what produced the features (written once, never changed)
      shards/<key>.safetensors    one item: tensor ``features`` (N, h, w, C), N = its frames
      records/<key>.json          that item's index record (the journal; its commit point)
      index.json                  all records merged into one file at the end of a run (readers
                                  use it for records not changed since; records/ is the truth)
      last_run.json               the summary of the most recent run (a log, not store content)

``store.json`` holds ``{"format", "version", "extraction", "storage"}``: ``extraction`` is
the extractor's ``config.to_dict()`` verbatim (for the simulator: model identity and weights
hash, block, timestep, shift, seed, resolution, dtype, per-frame or clip mode) and
``storage`` is how the features were stored (``precision`` bf16 / fp16 / fp32, ``pool``
null or ``[h, w]``, the grid they were pooled to at write time). Reading or writing with
another config is an error; fields that only say where a file was (``path``, ``file``) are
recorded but not compared, since the hashes of what they point to are.

An entry is keyed by item id **and** frame indices (for scans the frame ids of the file
names, for videos and image folders 0-based positions; ``vega3d.store.inputs``). ``<key>`` is ``<slug>-<hash>``: the id with characters outside ``[A-Za-z0-9._-]``
replaced by ``_`` (at most 64 of them), then the first 16 hex digits of the sha256 of
``[item_id, frame_indices]`` as JSON, so two entries never share a file.

Crash safety (``kill -9`` at any moment leaves no corrupt or half-written entry): every file
is written with :func:`vega3d.files.atomic_write_bytes` (to a temporary name in its final
folder, flushed and ``fsync``-ed, moved into place with ``os.replace`` — atomic on POSIX —
and the folder ``fsync``-ed). An item's shard
is written first and its record second, so a record exists only for a complete shard whose
sha256 it holds; a shard without a record (a run killed in between) is not part of the store
and is overwritten when the item is extracted again. Temporary files start with ``.tmp-``
and are ignored by readers.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PositiveInt

from vega3d import files
from vega3d.config import Config, parse
from vega3d.errors import Vega3DError
from vega3d.files import TMP_PREFIX  # noqa: F401 - the store's temporary files are vega3d.files'

FORMAT = "vega3d-feature-store"
VERSION = 1
STORE_FILE = "store.json"
INDEX_FILE = "index.json"
RUN_FILE = "last_run.json"
SHARD_DIR = "shards"
RECORD_DIR = "records"

# Storage precision name -> (torch dtype name, dtype name as safetensors/torch print it).
PRECISIONS = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class Record(Config):
    """An entry's index record (``records/<key>.json``, an entry of ``index.json``): its fields and
    JSON types (read back as plain dicts; this declares and checks them)."""

    item_id: str
    frame_indices: list[int]  # the entry's frames (what they index: vega3d.store.inputs), one per feature row
    selection: str  # how the frames were chosen: uniform:32 or frames:0,5,9
    num_available: int  # frames the input has
    kind: str  # scan, video, frames (or tensor: written directly)
    source: str  # where the input was
    shard: str  # shards/<key>.safetensors
    shape: Annotated[list[int], Field(min_length=4, max_length=4)]  # of the stored features (N, h, w, C)
    dtype: str  # of the stored features
    bytes: int  # of the shard file
    sha256: str  # of the shard file
    config_sha256: str  # of the store config it was written with
    clip_frames: list[int] | None = None  # clip mode only: the clip's frames


class Storage(Config):
    """How a store keeps its features (``store.json``'s ``storage``; :func:`vega3d.store.make_store_config`)."""

    precision: Literal["bf16", "fp16", "fp32"]  # the dtype the features are stored in (PRECISIONS)
    pool: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)] | None  # [h, w] grid pooled to, or None


class StoreConfig(Config):
    """``store.json``: what produced the features (read as a plain dict; this declares and checks it)."""

    format: str  # FORMAT
    version: int  # VERSION
    extraction: dict[str, Any]  # the extractor's config.to_dict(), verbatim
    storage: Storage


class Index(Config):
    """``index.json``: every committed record, merged at the end of a run (``StoreWriter.write_index``)."""

    format: str  # FORMAT
    version: int  # VERSION
    config_sha256: str  # of the store config (as each record's)
    entries: dict[str, Any]  # key -> record (each checked by check_record)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same bytes."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise Vega3DError(f"feature store: value is not JSON-serialisable ({err}): {value!r}") from None


# Keys whose values say where something was read from (a model folder, a prompt file), not
# what it was: recorded in store.json but left out of config comparisons and the config hash,
# so a store stays valid when the model folder moves or another node mounts it elsewhere.
# What the files were is compared through their hashes (model weights hash, prompt sha256).
LOCATION_KEYS = frozenset({"path", "file"})


def without_locations(config: Any) -> Any:
    """``config`` with every :data:`LOCATION_KEYS` entry removed, at any depth."""
    if isinstance(config, dict):
        return {k: without_locations(v) for k, v in config.items() if k not in LOCATION_KEYS}
    if isinstance(config, list):
        return [without_locations(v) for v in config]
    return config


def config_sha256(config: dict) -> str:
    """sha256 (hex) of a store config's canonical JSON, location fields left out."""
    return hashlib.sha256(canonical_json(without_locations(config)).encode()).hexdigest()


def entry_key(item_id: str, frame_indices: list[int]) -> str:
    """File-name key of the entry (item_id, frame_indices): ``<slug>-<16 hex digits>``."""
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", item_id)[:64].lstrip(".") or "item"
    digest = hashlib.sha256(canonical_json([item_id, [int(i) for i in frame_indices]]).encode()).hexdigest()
    return f"{slug}-{digest[:16]}"


def write_json(path: Path, value: Any) -> None:
    """A store's JSON file (``store.json``, a record, the index): :func:`vega3d.files.write_json`
    with sorted keys and an indent of 1 (the bytes every store has had)."""
    files.write_json(path, value, indent=1, sort_keys=True)


def check_record(record: Any, where: str, config_sha256: str | None = None) -> dict:
    """Validate one index record (a file a user may have edited: fields, types, shape) and, given
    the store's ``config_sha256``, that it was written with that config; returns it."""
    parse(Record, record, where, "record")
    n, shape = len(record["frame_indices"]), record["shape"]
    if n != shape[0]:
        raise Vega3DError(f"{where}: record has {n} frame indices but features of shape {shape}")
    written = record["config_sha256"]
    if config_sha256 is not None and written != config_sha256:
        raise Vega3DError(
            f"{where}: record of item {record['item_id']!r} was written with config {written[:12]}..., the "
            f"store's is {config_sha256[:12]}...: it belongs to another store"
        )
    return record


def config_differences(stored: Any, expected: Any, prefix: str = "") -> list[str]:
    """Human-readable list of the fields where two (nested) configs differ (location fields,
    :data:`LOCATION_KEYS`, are not compared)."""
    stored, expected = without_locations(stored), without_locations(expected)
    if isinstance(stored, dict) and isinstance(expected, dict):
        out: list[str] = []
        for k in sorted(set(stored) | set(expected)):
            name = f"{prefix}.{k}" if prefix else str(k)
            if k not in stored:
                out.append(f"{name}: not in the store, expected {expected[k]!r}")
            elif k not in expected:
                out.append(f"{name}: store has {stored[k]!r}, not in the expected config")
            else:
                out.extend(config_differences(stored[k], expected[k], name))
        return out
    return [] if stored == expected else [f"{prefix or 'config'}: store has {stored!r}, expected {expected!r}"]
