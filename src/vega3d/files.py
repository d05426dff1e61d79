"""Files vega3d reads and writes: JSON in and out, atomic writes, content hashes.

- :func:`read_json` / :func:`write_json`: the one way to read a user's or vega3d's JSON (errors
  name the file) and to write one (atomically, NaN as ``null``).
- :func:`atomic_write_bytes`: ``path`` is either absent, its old content, or the complete new
  content — never partial, even after a crash (temporary file in the same folder, ``fsync``,
  ``os.replace``, ``fsync`` of the folder).
- :func:`fingerprint`: the one content hash of model weights (cheap: 2 MiB per file) and
  :func:`file_sha256` (every byte).
- :func:`read_torch_file` / :func:`read_state_dict`: the one way to read a ``.pt`` / ``.pth``
  file (weights-only, on the CPU; an unreadable file is one error naming it).
- :func:`cache_dir`: the one folder vega3d caches things in (the built-in stand-in model, prompt
  contexts): ``$VEGA3D_CACHE``, else ``$XDG_CACHE_HOME/vega3d``, else ``~/.cache/vega3d``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vega3d.errors import Vega3DError

#: Bytes read from each end of a file by :func:`fingerprint`.
FINGERPRINT_CHUNK = 1 << 20
#: Prefix of the temporary files of :func:`atomic_write_bytes` (ignored by every reader).
TMP_PREFIX = ".tmp-"
#: Environment variable naming vega3d's cache folder (:func:`cache_dir`).
CACHE_ENV = "VEGA3D_CACHE"


def cache_dir() -> Path:
    """vega3d's cache folder (not created here): ``$VEGA3D_CACHE`` when set, else
    ``$XDG_CACHE_HOME/vega3d``, else ``~/.cache/vega3d``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vega3d"


def read_json(path, what: str) -> Any:
    """The parsed content of ``path``; :class:`Vega3DError` naming ``what`` and the file when it
    is missing or is not valid (UTF-8) JSON."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise Vega3DError(f"{what}: {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise Vega3DError(f"{what}: {path} is not valid JSON ({err})") from None


def read_torch_file(path) -> Any:
    """The object a ``.pt`` / ``.pth`` file holds, read with ``torch.load(weights_only=True)`` onto
    the CPU; a file that cannot be read so is a :class:`Vega3DError` naming it."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 — any unreadable file is bad input
        raise Vega3DError(
            f"{path}: cannot be read as a weights-only torch file ({type(err).__name__}: {err})"
        ) from None


def read_weight_map(index) -> dict[str, str]:
    """The ``weight_map`` (tensor name → shard file) of a ``*.safetensors.index.json``
    (:class:`vega3d.config.SafetensorsIndex`), every shard checked to be beside it; else one
    :class:`Vega3DError` line naming the index."""
    from vega3d.config import SafetensorsIndex, parse

    index = Path(index)
    weight_map = parse(SafetensorsIndex, read_json(index, "safetensors index"), str(index)).weight_map
    missing = sorted({shard for shard in weight_map.values() if not (index.parent / shard).is_file()})
    if missing:
        tensors = [k for k, v in weight_map.items() if v in missing]
        raise Vega3DError(
            f"{index} names shard(s) {missing[:3]} (for {len(tensors)} tensors, e.g. {tensors[0]}), which are not "
            f"in {index.parent}"
        )
    return weight_map


def read_state_dict(path) -> dict:
    """A flat state dict (name → tensor) from a ``.pt`` / ``.pth`` file (:func:`read_torch_file`)."""
    import torch

    state = read_torch_file(path)
    if not (isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise Vega3DError(f"{path}: found {type(state).__name__}; expected a flat state dict (name → tensor)")
    return state


def json_safe(value: Any) -> Any:
    """``value`` with every NaN float replaced by None (JSON has no NaN; a split without items
    has a NaN mean) and tuples as lists."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path, value: Any, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write ``value`` as JSON to ``path`` atomically (:func:`atomic_write_bytes`), NaN as null,
    with a final newline; creates the parent folder. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_safe(value), indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode())
    return path


def fsync_dir(path) -> None:
    """fsync a folder so that a rename inside it survives a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either absent/old or complete, never partial."""
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def file_sha256(path, chunk: int = 1 << 22) -> str:
    """sha256 (hex) of every byte of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def fingerprint(root, files: Iterable) -> str:
    """The content hash vega3d records for model weights (hex sha256).

    Definition: sha256 over, for each file in the given order, its path relative to ``root``
    (UTF-8, ``/``-separated), a NUL, its size as decimal ASCII, a NUL, then its first and last
    MiB (the whole file when it is at most 2 MiB). Reads at most 2 MiB per file, so hashing a 7B
    model takes milliseconds; it tells a different checkpoint, a truncated download or a
    changed header, not a flipped byte in the middle of a file (:func:`file_sha256` does).
    """
    root = Path(root)
    h = hashlib.sha256()
    for f in files:
        f = Path(f)
        size = f.stat().st_size
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + str(size).encode() + b"\0")
        with open(f, "rb") as fh:
            if size <= 2 * FINGERPRINT_CHUNK:
                h.update(fh.read())
            else:
                h.update(fh.read(FINGERPRINT_CHUNK))
                fh.seek(size - FINGERPRINT_CHUNK)
                h.update(fh.read(FINGERPRINT_CHUNK))
    return h.hexdigest()
