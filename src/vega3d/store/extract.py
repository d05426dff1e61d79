"""Offline extraction into a feature store: resumable, crash-safe, distributed over ranks.

:func:`extract_to_store` runs any extractor (an object with ``.extract(frames (N, 3, H, W)
float in [0, 1]) -> (N, h, w, C)`` and ``.config.to_dict()``, e.g. a
:class:`vega3d.simulator.WanWorldSimulator`) over input items and writes one store entry
per item.

- **Resume**: an item whose (id, frame selection) already has a committed record with its
  shard present is skipped, so rerunning the same command finishes an interrupted run.
- **Distributed**: when ``torch.distributed`` is initialised (``torchrun``), every rank
  lists the finished items, waits for the others, then takes every ``world_size``-th of the
  pending items (sorted by id): disjoint shares, no duplicate work. At the end rank 0 merges
  all records into ``index.json`` and prints the summary of all ranks.
- **Bad inputs** (unreadable video, scan folder with missing depth, image of another size)
  are reported per item and the run goes on, unless ``fail_fast``. Errors of the extractor
  that are not :class:`Vega3DError` (a bug, out of memory) stop the run; rerunning resumes.
  A new store is created by the first item that succeeds, so a run in which every item
  fails leaves no store folder behind.
- The next item's frames are read in a background thread while the current one is extracted.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from vega3d.errors import Vega3DError
from vega3d.progress import progress as _progress
from vega3d.store import layout
from vega3d.store.inputs import InputItem, check_selection, load_frames
from vega3d.store.writer import StoreWriter, make_store_config


@dataclass
class ExtractSummary:
    """What a run did: item ids done / skipped, failed ids with reasons, notes, bytes written."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    bytes_written: int = 0
    seconds: float = 0.0

    def merge(self, other: ExtractSummary) -> None:
        self.done += other.done
        self.skipped += other.skipped
        self.failed.update(other.failed)
        self.notes.update(other.notes)
        self.bytes_written += other.bytes_written
        self.seconds = max(self.seconds, other.seconds)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["done"], d["skipped"] = sorted(self.done), sorted(self.skipped)
        return d

    def table(self) -> str:
        """A readable summary (several lines)."""
        n = len(self.done) + len(self.skipped) + len(self.failed)
        per_item = self.bytes_written / len(self.done) if self.done else 0
        rate = len(self.done) / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"{n} items: {len(self.done)} done, {len(self.skipped)} skipped (already in the store), "
            f"{len(self.failed)} failed",
            f"written: {self.bytes_written / 2**20:.2f} MiB ({per_item / 2**20:.3f} MiB per item), "
            f"{self.seconds:.1f} s ({rate:.2f} items/s)",
        ]
        for item_id, note in sorted(self.notes.items()):
            lines.append(f"  note  {item_id}: {note}")
        for item_id, reason in sorted(self.failed.items()):
            lines.append(f"  FAILED {item_id}: {reason}")
        return "\n".join(lines)


def selection_name(num_frames: int | None, frames: Sequence[int] | None) -> str:
    """How frames are chosen, as recorded with each entry: ``uniform:32`` or ``frames:0,5,9``."""
    if frames is not None:
        return "frames:" + ",".join(str(int(f)) for f in frames)
    return f"uniform:{int(num_frames)}"


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    if _dist()[1] > 1:
        dist.barrier()


def extract_to_store(
    items: Sequence[InputItem],
    extractor: Any,
    store: str | Path,
    *,
    num_frames: int | None = 32,
    frames: Sequence[int] | None = None,
    precision: str = "bf16",
    pool: Sequence[int] | None = None,
    fail_fast: bool = False,
    progress: bool = True,
) -> ExtractSummary:
    """Extract features of ``items`` with ``extractor`` into the store at ``store``; returns the
    summary of all ranks (on every rank).

    ``num_frames`` frames per item chosen uniformly, or ``frames`` (explicit indices, the same
    for every item; see ``vega3d.store.inputs`` for what they index). ``precision`` and
    ``pool`` choose how features are stored (:func:`vega3d.store.make_store_config`). An
    existing store written with another config raises :class:`Vega3DError`. A new store is
    created by the first item that succeeds: when every item fails, no store is left behind.
    """
    check_selection(num_frames, frames)
    rank, world = _dist()
    writer = StoreWriter(store, make_store_config(extractor, precision, pool))
    selection = selection_name(num_frames, frames)
    summary, pending = _pending(writer, items, selection)
    uniform = num_frames if frames is None else None
    run = _Run(extractor, writer, selection, uniform, fail_fast, summary, show=progress and rank == 0)
    desc = f"extract (rank {rank}/{world})" if world > 1 else "extract"
    start = time.perf_counter()
    with _progress(pending[rank::world], unit="item", desc=desc, enabled=run.show) as run.bar:
        for it, loaded in prefetched(run.bar, lambda it: load_frames(it, num_frames, frames)):
            run.item(it, loaded)
    summary.seconds = time.perf_counter() - start
    summary = _all_ranks(summary, world)
    if rank == 0:
        _finish(writer, summary)
    _barrier()
    return summary


def _pending(writer: StoreWriter, items: Sequence[InputItem], selection: str) -> tuple[ExtractSummary, list]:
    """A summary listing the items already in the store (skipped), and the items to extract.
    Every rank lists them before any rank writes."""
    finished = {(r["item_id"], r["selection"]) for r in writer.records().values() if writer.is_done(r)}
    _barrier()  # nobody writes before every rank has listed what is finished
    summary = ExtractSummary(skipped=[it.item_id for it in items if (it.item_id, selection) in finished])
    return summary, [it for it in items if (it.item_id, selection) not in finished]


@dataclass
class _Run:
    """One rank's extraction: the extractor, where it writes, how frames were chosen
    (``num_frames``: None for explicit frames), and what happened (``summary``, ``bar``)."""

    extractor: Any
    writer: StoreWriter
    selection: str
    num_frames: int | None
    fail_fast: bool
    summary: ExtractSummary
    show: bool = False  # progress bar and notes shown (rank 0)
    bar: Any = None

    def item(self, it: InputItem, loaded) -> None:
        """Extract and store one item whose frames were ``loaded`` (or failed to load: an
        exception). A bad input or a :class:`Vega3DError` of the extractor is recorded as a
        failure (raised with ``fail_fast``); any other error of the extractor stops the run."""
        if isinstance(loaded, Exception):  # any unreadable input is reported per item
            reason = str(loaded) if isinstance(loaded, Vega3DError) else f"{it.path}: {type(loaded).__name__}: {loaded}"
            return self._fail(it, reason, loaded)
        if self.num_frames is not None and loaded.num_available < self.num_frames:
            n = loaded.num_available
            note = self.summary.notes[it.item_id] = (
                f"asked for {self.num_frames} frames, the input has {n}: using all {n} once"
            )
            if self.show:  # tqdm's write keeps its bar intact; plain lines are printed
                getattr(self.bar, "write", print)(f"extract: {it.item_id}: {note}", file=sys.stderr)
        try:
            record = self._write(it, loaded)
        except Vega3DError as err:
            return self._fail(it, str(err), err)
        self.summary.done.append(it.item_id)
        self.summary.bytes_written += record["bytes"]

    def _write(self, it: InputItem, loaded) -> dict:
        """The extractor's features of one item, written into the store; returns the record."""
        labels, clip_frames = loaded.frame_indices, None
        with torch.inference_mode():
            if hasattr(self.extractor, "extract_rows"):  # clip mode (vega3d.store.clip): rows are latent frames
                features, groups = self.extractor.extract_rows(loaded.frames)
                labels, clip_frames = [loaded.frame_indices[g[-1]] for g in groups], loaded.frame_indices
            else:
                features = self.extractor.extract(loaded.frames)
        return self.writer.write(it.item_id, labels, features, selection=self.selection, clip_frames=clip_frames,
                                 num_available=loaded.num_available, kind=it.kind, source=str(it.path))  # fmt: skip

    def _fail(self, it: InputItem, reason: str, err: Exception) -> None:
        if self.fail_fast:
            raise Vega3DError(f"extract: item {it.item_id!r} failed (--fail-fast): {reason}") from err
        self.summary.failed[it.item_id] = reason
        self.bar.set_postfix(failed=len(self.summary.failed))


def _all_ranks(summary: ExtractSummary, world: int) -> ExtractSummary:
    """The summary of every rank merged (each listed the same skipped items)."""
    if world == 1:
        return summary
    gathered: list[ExtractSummary | None] = [None] * world
    dist.all_gather_object(gathered, summary)
    merged = ExtractSummary(skipped=summary.skipped)
    for s in gathered:
        s.skipped = []
        merged.merge(s)
    return merged


def _finish(writer: StoreWriter, summary: ExtractSummary) -> None:
    """Rank 0, once every rank is done: merge the records into ``index.json``, remove what
    killed runs left, log the run in ``last_run.json`` — if any item made the store exist."""
    if not writer.exists:
        return
    writer.write_index()
    remove_orphans(writer.path)
    layout.write_json(writer.path / layout.RUN_FILE, summary.to_dict())


def prefetched(items: Iterable, load: Callable) -> Iterator[tuple[Any, Any]]:
    """Yield ``(item, load(item))`` in order while the next item loads in a background thread
    (decoding overlaps extraction); an exception raised by ``load`` is yielded, not raised."""

    def attempt(item):
        try:
            return load(item)
        except Exception as err:  # handed to the caller, which reports it per item
            return err

    with ThreadPoolExecutor(max_workers=1) as pool:
        iterator = iter(items)
        current = next(iterator, _END)
        future = pool.submit(attempt, current) if current is not _END else None
        while current is not _END:
            following = next(iterator, _END)
            result = future.result()
            if following is not _END:
                future = pool.submit(attempt, following)
            yield current, result
            current = following


_END = object()


def remove_orphans(store: Path) -> list[Path]:
    """Delete temporary files and shards without a record (left by a killed run); returns them.

    Call only when no other process is writing into the store.
    """
    recorded = {p.stem for p in (store / layout.RECORD_DIR).glob("*.json") if not p.name.startswith(layout.TMP_PREFIX)}
    removed = []
    for folder in (store, store / layout.SHARD_DIR, store / layout.RECORD_DIR):
        for p in folder.iterdir():
            orphan = folder.name == layout.SHARD_DIR and p.suffix == ".safetensors" and p.stem not in recorded
            if p.is_file() and (p.name.startswith(layout.TMP_PREFIX) or orphan):
                p.unlink()
                removed.append(p)
    return removed
