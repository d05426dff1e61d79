"""Online features: computed on demand by an extractor, kept in an LRU cache bounded by bytes (RAM)
and, optionally, in a feature store on disk — so the frozen simulator runs once per input.

:class:`OnlineFeatureCache` keys an entry by ``(store config, item id, frame indices)``: the store
config holds the extractor's identity (for the simulator: weights hash, block, timestep, seed,
**resolution**, dtypes, ``batch_frames``) and the storage precision, so another simulator or size
never shares an entry. Features are kept exactly as a feature store with the same ``precision`` /
``pool`` keeps them (:func:`vega3d.store.writer.prepare_features`: on the CPU, cast, contiguous):
with ``precision="fp32"`` (the default) a cached entry is bit-identical to a fresh
``extractor.extract(frames)``. The RAM tier never holds more than ``max_bytes`` (an entry larger
than that is returned, not kept; the least recently used entries are evicted first).

Disk tier (``disk=FOLDER``): a feature store (vega3d.store.layout) at
``FOLDER/store-<config hash>/``, one per extractor identity, written through: a RAM miss reads the
entry from it (its shard's sha256 checked) before computing; a computed entry is written to it
(crash-safe, under a per-entry file lock, so ranks sharing the folder write an entry once). It is
a store like any other (``vega3d store-info``) and outlives the process: a second run — another
training, a second ``eval-model`` — reads what the first computed. An entry that fails its check
is reported (:class:`FeatureCacheWarning`) and recomputed; a disk tier that cannot be written is
reported and dropped (the RAM tier goes on).

:class:`CachedExtractor` wraps an extractor so that ``extract(frames)`` goes through a cache keyed
by the frames themselves (:func:`frames_key`: the sha256 of their dtype, shape and bytes — the media
and the frame selection in one, whatever file they came from); everything else (``config``,
``feature_dim``, ``device``, ``stand_in`` ...) is the wrapped extractor's. It stands where the
simulator stands (``Vega3DQwen.attach_simulator``): online training and ``eval-model`` use it.
Features come back on the CPU in the storage precision; do not modify them in place (a cached
tensor is shared by every later hit).
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import torch

from vega3d.errors import Vega3DError
from vega3d.files import read_json
from vega3d.store import layout
from vega3d.store.writer import StoreWriter, make_store_config, prepare_features


class FeatureCacheWarning(UserWarning):
    """A disk-tier entry failed its check (recomputed) or the disk tier could not be written."""


class OnlineFeatureCache:
    """Features computed on the fly by ``extractor`` (``.extract(frames) -> (N, h, w, C)``, ``.config``),
    cached by ``(store config, item_id, frame_indices)`` in least-recently-used order while their
    total size stays within ``max_bytes``; ``disk``: a folder for the feature-store tier (None: RAM
    only). See the module docstring. Counters: :meth:`stats`."""

    def __init__(
        self,
        extractor: Any,
        max_bytes: int,
        *,
        precision: str = "fp32",
        pool: Sequence[int] | None = None,
        disk: str | Path | None = None,
    ):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, Integral) or max_bytes < 0:
            raise Vega3DError(f"OnlineFeatureCache: max_bytes must be an integer >= 0, got {max_bytes!r}")
        self.extractor = extractor
        self.max_bytes = int(max_bytes)
        self.config = make_store_config(extractor, precision, pool)
        self.config_sha256 = layout.config_sha256(self.config)
        self.disk = _DiskTier(Path(disk) / f"store-{self.config_sha256[:16]}", self.config) if disk else None
        self._entries: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.bytes = self.hits = self.disk_hits = self.misses = self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """``(item_id, frame_indices) in cache``: held in RAM."""
        item_id, frame_indices = key
        return self._key(item_id, frame_indices) in self._entries

    def _key(self, item_id: str, frame_indices: Sequence[int]) -> tuple:
        return (self.config_sha256, str(item_id), tuple(int(i) for i in frame_indices))

    def get(
        self, item_id: str, frame_indices: Sequence[int], frames: torch.Tensor | Callable[[], torch.Tensor]
    ) -> torch.Tensor:
        """Features (N, h, w, C) of ``item_id`` at ``frame_indices``, on the CPU in the storage
        precision: from RAM, else from the disk tier, else computed from ``frames`` (the N frames
        as the extractor takes them, or a function returning them; used only then)."""
        key = self._key(item_id, frame_indices)
        if key in self._entries:
            self.hits += 1
            self._entries.move_to_end(key)
            return self._entries[key]
        features = self.disk.read(key[1], key[2]) if self.disk is not None else None
        if features is not None:
            self.disk_hits += 1
        else:
            self.misses += 1
            x = frames() if callable(frames) else frames
            what = f"OnlineFeatureCache: item {item_id!r} (the extractor's output)"
            features = prepare_features(self.extractor.extract(x), self.config["storage"], len(key[2]), what)
            if self.disk is not None and not self.disk.write(key[1], key[2], features):
                self.disk = None
        self._keep(key, features)
        return features

    def _keep(self, key: tuple, features: torch.Tensor) -> None:
        """Hold ``features`` when they fit, evicting the least recently used entries first."""
        size = features.numel() * features.element_size()
        if size > self.max_bytes:
            return
        while self.bytes + size > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()
            self.evictions += 1
        self._entries[key] = features
        self.bytes += size

    def stats(self) -> dict:
        """``hits`` (RAM), ``disk_hits``, ``misses`` (computed), ``evictions``, ``entries``,
        ``bytes`` held and ``max_bytes``."""
        return {"hits": self.hits, "disk_hits": self.disk_hits, "misses": self.misses, "evictions": self.evictions,
                "entries": len(self._entries), "bytes": self.bytes, "max_bytes": self.max_bytes}  # fmt: skip


class _DiskTier:
    """A feature store used as the cache's second tier: entries looked up by key, written under a lock."""

    def __init__(self, path: Path, config: dict):
        self.path = Path(path)
        self.writer = StoreWriter(self.path, config)
        self.config_sha256 = self.writer.config_sha256

    def _record_file(self, item_id: str, frame_indices: tuple) -> tuple[Path, str]:
        key = layout.entry_key(item_id, list(frame_indices))
        return self.path / layout.RECORD_DIR / f"{key}.json", key

    def read(self, item_id: str, frame_indices: tuple) -> torch.Tensor | None:
        """The entry's features, or None when it is not stored (or fails its check: warned)."""
        record_file, _ = self._record_file(item_id, frame_indices)
        if not record_file.is_file():
            return None
        try:
            return self._load(record_file, item_id, frame_indices)
        except Exception as err:  # noqa: BLE001 - any unusable entry is recomputed, never fatal
            _warn(f"online feature cache: entry {record_file} is unusable ({err}); recomputing it")
            return None

    def _load(self, record_file: Path, item_id: str, frame_indices: tuple) -> torch.Tensor:
        """The features of a stored entry whose record and shard pass their checks (else raises)."""
        from safetensors.torch import load

        record = read_json(record_file, "feature store record")
        record = layout.check_record(record, str(record_file), self.config_sha256)
        data = (self.path / record["shard"]).read_bytes()
        if (record["item_id"], record["frame_indices"]) != (item_id, list(frame_indices)):
            raise Vega3DError("the record is another entry's")
        if hashlib.sha256(data).hexdigest() != record["sha256"]:
            raise Vega3DError("the shard does not match its record's sha256")
        return load(data)["features"]

    def write(self, item_id: str, frame_indices: tuple, features: torch.Tensor) -> bool:
        """Store the entry unless a valid one is there (another process wrote it meanwhile);
        False (warned) when the folder cannot be written."""
        from filelock import FileLock

        record_file, key = self._record_file(item_id, frame_indices)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.path / f"{layout.TMP_PREFIX}{key}.lock")):  # ignored by store readers
                if not self._valid(record_file, item_id, frame_indices):
                    self.writer.write(item_id, list(frame_indices), features, selection="online",
                                      source="online feature cache")  # fmt: skip
        except OSError as err:
            _warn(f"online feature cache: cannot write the disk tier {self.path} ({err}); going on in RAM only")
            return False
        return True

    def _valid(self, record_file: Path, item_id: str, frame_indices: tuple) -> bool:
        try:
            return record_file.is_file() and self._load(record_file, item_id, frame_indices) is not None
        except Exception:  # noqa: BLE001 - invalid: to be (re)written
            return False


def frames_key(frames) -> str:
    """``frames-<32 hex digits>``: the sha256 of the frames' dtype, shape and bytes (a tensor on any
    device, or an array) — the id :class:`CachedExtractor` files them under."""
    x = torch.as_tensor(frames).detach().cpu().contiguous()
    digest = hashlib.sha256(f"{x.dtype}{tuple(x.shape)}".encode())
    digest.update(x.view(torch.uint8).numpy().data if x.numel() else b"")
    return f"frames-{digest.hexdigest()[:32]}"


class CachedExtractor:
    """``extractor`` with its ``extract(frames)`` served by an :class:`OnlineFeatureCache`
    (``max_bytes`` of RAM, optional ``disk`` tier, ``precision``) keyed by :func:`frames_key`.
    Any other attribute is the wrapped extractor's. See the module docstring."""

    def __init__(self, extractor: Any, max_bytes: int, *, disk: str | Path | None = None, precision: str = "fp32"):
        self.extractor = extractor
        self.cache = OnlineFeatureCache(extractor, max_bytes, precision=precision, disk=disk)

    def extract(self, frames) -> torch.Tensor:
        """The extractor's features of ``frames``, from the cache when it holds them."""
        return self.cache.get(frames_key(frames), range(len(frames)), frames)

    def stats(self) -> dict:
        """The cache's counters (:meth:`OnlineFeatureCache.stats`)."""
        return self.cache.stats()

    def __getattr__(self, name: str):
        if name in ("extractor", "cache"):  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.extractor, name)

    def __repr__(self) -> str:
        return f"CachedExtractor({self.extractor!r}, {self.cache.stats()})"


def with_feature_cache(extractor: Any, max_bytes: int, disk: str | Path | None = None) -> Any:
    """``extractor`` behind a :class:`CachedExtractor` of ``max_bytes`` of RAM and the optional
    ``disk`` tier; ``extractor`` itself when both are off (0 bytes, no folder)."""
    if not max_bytes and not disk:
        return extractor
    return CachedExtractor(extractor, max_bytes, disk=disk)


def _warn(message: str) -> None:
    warnings.warn(message, FeatureCacheWarning, stacklevel=4)
