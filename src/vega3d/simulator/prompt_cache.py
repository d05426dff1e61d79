"""The prompt-context cache: Wan's text context computed once, then read in milliseconds.

Wan2.1's context for a prompt is the umT5-xxl encoder's output (:mod:`vega3d.simulator.prompt`):
a 5.7B-parameter model (about 23 GB in float32) for a (1, 4096) result that depends only on the
encoder's weights, its tokenizer, the text and the max length. The first load that needs it
computes it and stores it; every later load (any process, any rank) reads it::

    <cache>/prompt-context/<key>.safetensors     <cache> = vega3d.files.cache_dir() ($VEGA3D_CACHE)

``key`` (:func:`prompt_cache_key`) is the sha256 of the canonical JSON of the recipe version,
the text encoder's content hash (:func:`vega3d.files.fingerprint` of its weight files), the hash
of its config, the hash of its tokenizer files, the text and the max length: change any of them
and another entry is used. The entry is the file :func:`~vega3d.simulator.prompt.save_prompt_embedding`
writes (tensor ``prompt_embedding``, the trimmed (k, text_dim) float32 rows), with the key and
the sha256 of the tensor's bytes in its metadata.

Many processes at once (the ranks of one job): the entry is computed under a file lock
(``filelock``; ``<key>.safetensors.lock`` beside it, released by the OS if its holder dies), so
exactly one process computes; the others wait for the lock, then find the entry and read it.
The entry is written atomically (:func:`vega3d.files.atomic_write_bytes`): a crash mid-write
leaves the old state (no entry), never a partial file. Reading checks the key, the checksum,
dtype, shape and finiteness: an entry failing any of them is reported
(:class:`PromptCacheWarning`), recomputed and replaced. A cache folder that cannot be created,
locked or written is reported the same way and the context is computed without caching —
never an error. The lock relies on ``flock``: on a network file system without working locks,
point ``VEGA3D_CACHE`` at a local disk.

Not in the key: library versions (torch, transformers) and the device the encoder ran on. The
first computation's bytes are reused on every device and after upgrades (so every rank and run
uses bit-identical contexts); the entry's metadata records where and with what it was
computed. ``prompt_cache=False`` (CLI: ``--no-cache``) bypasses the cache; deleting the folder
clears it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

from vega3d.files import cache_dir
from vega3d.simulator.prompt import TENSOR_NAME, save_prompt_embedding

#: Version of how a context is computed from the inputs in the key (bump if encode_prompt changes).
RECIPE = 1
#: Subfolder of vega3d's cache holding the entries.
SUBDIR = "prompt-context"
#: Seconds to wait for another process's lock before saying so (then waiting on).
LOCK_NOTICE_S = 10.0


class PromptCacheWarning(UserWarning):
    """The prompt-context cache could not be used (unwritable folder) or held a bad entry."""


class CachedContext(NamedTuple):
    """A trimmed (k, text_dim) float32 CPU context, the cache entry holding it (None: not
    cached) and how it was obtained: ``"hit"`` (read), ``"computed"`` (computed here and
    stored) or ``"uncached"`` (computed here, not stored: cache bypassed or unwritable)."""

    embedding: torch.Tensor
    file: Path | None
    status: str


def prompt_cache_dir() -> Path:
    """The folder holding the entries: ``<vega3d.files.cache_dir()>/prompt-context``."""
    return cache_dir() / SUBDIR


def prompt_cache_key(*, text_encoder: str, text_encoder_config: str, tokenizer: str, text: str, text_len: int) -> str:
    """sha256 (hex) naming the entry of a context: the hashes of the encoder's weights, its
    config and its tokenizer files, the prompt text (as given) and the max length."""
    inputs = dict(recipe=RECIPE, text_encoder=text_encoder, text_encoder_config=text_encoder_config,
                  tokenizer=tokenizer, text=text, text_len=int(text_len), dtype="float32")  # fmt: skip
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def tensor_sha256(emb: torch.Tensor) -> str:
    """sha256 (hex) of a float32 CPU tensor's bytes (the checksum an entry records)."""
    return hashlib.sha256(emb.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()


def cached_prompt_context(
    key: str,
    compute: Callable[[], torch.Tensor],
    *,
    text_dim: int,
    text_len: int,
    metadata: dict | None = None,
    folder: Path | None = None,
) -> CachedContext:
    """The context of ``key``: read from the cache, else ``compute()`` (→ trimmed (k, text_dim))
    under the entry's lock and stored. ``metadata`` (str → str) goes into the entry's header.
    ``folder``: default :func:`prompt_cache_dir`. See the module docstring."""
    folder = Path(folder) if folder is not None else prompt_cache_dir()
    path = folder / f"{key}.safetensors"
    found = _read_or_warn(path, key, text_dim, text_len)
    if found is not None:
        return CachedContext(found, path, "hit")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = _acquire(path)
    except OSError as err:
        _warn(f"prompt-context cache {folder} cannot be used ({err}); computing the context without caching it")
        return CachedContext(compute(), None, "uncached")
    try:
        found = _read_entry(path, key, text_dim, text_len)[0]  # another process may have written it meanwhile
        if found is not None:
            return CachedContext(found, path, "hit")
        emb = compute().detach().float().cpu().contiguous()
        header = {**(metadata or {}), "key": key, "sha256": tensor_sha256(emb)}
        try:
            save_prompt_embedding(emb, path, metadata=header)
        except OSError as err:
            _warn(f"prompt-context cache: cannot write {path} ({err}); the context is used without caching it")
            return CachedContext(emb, None, "uncached")
        return CachedContext(emb, path, "computed")
    finally:
        lock.release()


def _acquire(path: Path):
    """The entry's file lock, held; says so on stderr when another process holds it long."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire(timeout=LOCK_NOTICE_S)
    except Timeout:
        print(f"vega3d: waiting for another process computing the prompt context {path.name} "
              f"(lock {lock.lock_file})", file=sys.stderr)  # fmt: skip
        lock.acquire()
    return lock


def _read_or_warn(path: Path, key: str, text_dim: int, text_len: int) -> torch.Tensor | None:
    emb, problem = _read_entry(path, key, text_dim, text_len)
    if problem:
        _warn(f"prompt-context cache entry {path} {problem}; recomputing it and replacing the entry")
    return emb


def _read_entry(path: Path, key: str, text_dim: int, text_len: int) -> tuple[torch.Tensor | None, str | None]:
    """``(context, None)`` for a valid entry, ``(None, None)`` when there is none, ``(None,
    problem)`` when it is unreadable or fails a check."""
    from safetensors import safe_open

    if not path.is_file():
        return None, None
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta, names = dict(fh.metadata() or {}), list(fh.keys())
            emb = fh.get_tensor(TENSOR_NAME) if names == [TENSOR_NAME] else None
    except Exception as err:  # noqa: BLE001 - safetensors raises several types for a damaged file
        return None, f"is not a readable safetensors file ({type(err).__name__}: {err})"
    if emb is None:
        return None, f"holds tensors {names}, expected only '{TENSOR_NAME}'"
    if meta.get("key") != key:
        return None, "records another key"
    fits = emb.dtype == torch.float32 and emb.ndim == 2 and emb.shape[1] == text_dim and 1 <= emb.shape[0] <= text_len
    if not fits or not bool(torch.isfinite(emb).all()):
        want = f"finite float32 (1..{text_len}, {text_dim})"
        return None, f"holds a {emb.dtype} tensor of shape {tuple(emb.shape)}, expected {want}"
    if meta.get("sha256") != tensor_sha256(emb):
        return None, "fails its checksum"
    return emb, None


def _warn(message: str) -> None:
    warnings.warn(message, PromptCacheWarning, stacklevel=4)
