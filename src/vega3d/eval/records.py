"""The one predictions format (JSONL keyed by id) and annotation-file reading.

Predictions: one JSON object per line, ``{"id": ..., <fields>}``; the fields per
benchmark are in :data:`PREDICTION_FIELDS`. Ids are matched to annotation ids as
strings (``12`` and ``"12"`` are the same id). Every annotation id needs exactly
one prediction and every prediction must belong to an annotation: missing,
duplicate or unknown ids, unknown keys, malformed lines, wrong types and
non-finite boxes are :class:`Vega3DError` naming the file, line and id.

A runner only has to produce that file; :func:`write_predictions` validates the
records with the same rules before writing, so a bad runner fails at write time.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from vega3d.errors import Vega3DError
from vega3d.eval.boxes import as_box
from vega3d.files import atomic_write_bytes, read_json

# field -> (kind, required). Kinds: "text" (str), "box" (6 finite numbers),
# "boxes" (list of boxes, may be empty), "box_or_null".
PREDICTION_FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "vsibench": {"prediction": ("text", True)},
    "scanqa": {"prediction": ("text", True)},
    "sqa3d": {"prediction": ("text", True)},
    "scanrefer": {"box": ("box", True)},
    "multi3drefer": {"boxes": ("boxes", True)},
    "scan2cap": {"prediction": ("text", True), "box": ("box_or_null", False)},
}


def prediction_id(value, *, where: str) -> str:
    """Normalise an id (int or str) to the string used for matching."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Vega3DError(f"{where}: 'id' must be an integer or a string, found {type(value).__name__} {value!r}")
    return str(value)


def validate_prediction(record, benchmark: str, *, where: str) -> tuple[str, dict]:
    """Check one prediction record; return ``(id, cleaned record)``.

    The cleaned record holds the fields of :data:`PREDICTION_FIELDS` with boxes
    as lists of floats.
    """
    fields = _fields(benchmark)
    if not isinstance(record, Mapping):
        raise Vega3DError(f"{where}: expected a JSON object, found {type(record).__name__}")
    if "id" not in record:
        raise Vega3DError(f"{where}: record has no 'id' (keys: {sorted(record)})")
    item_id = prediction_id(record["id"], where=where)
    where = f"{where} (id {item_id!r})"
    unknown = sorted(set(record) - set(fields) - {"id"})
    if unknown:
        raise Vega3DError(
            f"{where}: unknown key(s) {unknown} for benchmark {benchmark!r}; expected 'id' and {sorted(fields)}"
        )
    cleaned: dict = {}
    for name, (kind, required) in fields.items():
        if name not in record:
            if required:
                raise Vega3DError(f"{where}: missing field {name!r} ({kind}) for benchmark {benchmark!r}")
            continue
        cleaned[name] = _check_field(record[name], kind, where=f"{where} field {name!r}")
    return item_id, cleaned


def _check_field(value, kind: str, *, where: str):
    if kind == "text":
        if not isinstance(value, str):
            raise Vega3DError(f"{where}: expected a string, found {type(value).__name__} {value!r}")
        return value
    if kind == "box_or_null" and value is None:
        return None
    if kind in ("box", "box_or_null"):
        return as_box(value, where=where).tolist()
    if kind == "boxes":
        if not isinstance(value, list):
            raise Vega3DError(f"{where}: expected a list of boxes (possibly empty), found {type(value).__name__}")
        return [as_box(box, where=f"{where}[{i}]").tolist() for i, box in enumerate(value)]
    raise AssertionError(kind)  # pragma: no cover


def _fields(benchmark: str) -> dict[str, tuple[str, bool]]:
    if benchmark not in PREDICTION_FIELDS:
        raise Vega3DError(f"unknown benchmark {benchmark!r}; expected one of {sorted(PREDICTION_FIELDS)}")
    return PREDICTION_FIELDS[benchmark]


def json_line(line: str, where: str):
    """One line of a JSONL file, parsed (NaN/Infinity parse: box checks then name the id)."""
    try:
        return json.loads(line)
    except ValueError as err:
        raise Vega3DError(f"{where}: malformed JSON line ({err}); expected one JSON object per line") from None


def jsonl_records(path: str | Path, what: str) -> Iterator[tuple[object, str]]:
    """``(parsed line, "path:line")`` for every non-blank line of a JSONL file, in order
    (``what``: the file's role, for the error when it is missing)."""
    path = Path(path)
    if not path.is_file():
        raise Vega3DError(f"{what} {path} does not exist")
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if line.strip():
            yield json_line(line, f"{path}:{n}"), f"{path}:{n}"


def read_predictions(path: str | Path, benchmark: str) -> dict[str, dict]:
    """Read a predictions JSONL file into ``{id: record}`` (see module docstring).

    Blank lines are ignored; everything else must be a valid record.
    """
    _fields(benchmark)
    return _validated(jsonl_records(path, "predictions file"), benchmark)


def as_predictions(predictions, benchmark: str) -> dict[str, dict]:
    """Accept a JSONL path, ``{id: record}`` or a list of records; validate all."""
    _fields(benchmark)
    if isinstance(predictions, (str, Path)):
        return read_predictions(predictions, benchmark)
    if isinstance(predictions, Mapping):
        items = []
        for key, value in predictions.items():
            if not isinstance(value, Mapping):
                raise Vega3DError(
                    f"predictions[{key!r}]: expected a record mapping field -> value, found {type(value).__name__}"
                )
            items.append(({**value, "id": key}, f"predictions[{key!r}]"))
    elif isinstance(predictions, Iterable):
        items = [(record, f"predictions[{i}]") for i, record in enumerate(predictions)]
    else:
        raise Vega3DError(
            f"predictions: expected a path, a mapping or a list of records, found {type(predictions).__name__}"
        )
    return _validated(items, benchmark)


def _validated(items: Iterable[tuple[object, str]], benchmark: str) -> dict[str, dict]:
    """``{id: cleaned record}`` of ``(record, where)`` pairs, each validated; ids unique."""
    out: dict[str, dict] = {}
    first: dict[str, str] = {}
    for record, where in items:
        item_id, cleaned = validate_prediction(record, benchmark, where=where)
        if item_id in out:
            line = re.search(r":(\d+)$", first[item_id])  # a file's "path:line", else "predictions[i]"
            seen = f"line {line[1]}" if line else first[item_id]
            raise Vega3DError(f"{where}: duplicate id {item_id!r} (first seen on {seen})")
        out[item_id], first[item_id] = cleaned, where
    return out


def write_predictions(path: str | Path, benchmark: str, records: Iterable[Mapping]) -> int:
    """Validate ``records`` and write them as predictions JSONL (atomically); return the count.

    The hook for runners: produce one record per annotation id with the fields
    of :data:`PREDICTION_FIELDS`, then call this.
    """
    validated = as_predictions(list(records), benchmark)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"id": item_id, **record}, allow_nan=False) + "\n" for item_id, record in validated.items()]
    atomic_write_bytes(path, "".join(lines).encode("utf-8"))
    return len(validated)


def match_ids(predictions: Mapping[str, dict], annotation_ids: list[str], benchmark: str) -> None:
    """Require a one-to-one match between prediction ids and annotation ids."""
    expected = set(annotation_ids)
    missing = [i for i in annotation_ids if i not in predictions]
    extra = [i for i in predictions if i not in expected]
    if missing:
        hint = f"; prediction ids not in the annotations look like {extra[:3]}" if extra else ""
        raise Vega3DError(
            f"{benchmark}: {len(missing)} of {len(annotation_ids)} annotation ids have no prediction "
            f"(first: {missing[:5]}); every item must be predicted{hint}"
        )
    if extra:
        raise Vega3DError(f"{benchmark}: {len(extra)} prediction id(s) are not in the annotations (first: {extra[:5]})")


def as_annotations(annotations, loader, item_type: type) -> list:
    """A path (read with ``loader``) or an already loaded list of ``item_type``."""
    if isinstance(annotations, (str, Path)):
        return loader(annotations)
    items = list(annotations)
    for i, item in enumerate(items):
        if not isinstance(item, item_type):
            raise Vega3DError(
                f"annotations[{i}]: expected a path or the output of load_annotations ({item_type.__name__} items), "
                f"found {type(item).__name__}"
            )
    return items


def load_json_records(path: str | Path) -> list:
    """Read a JSON list (``.json``) or JSON-lines (``.jsonl``) annotation file."""
    if Path(path).suffix == ".jsonl":
        return [record for record, _ in jsonl_records(path, "annotation file")]
    return read_json(path, "annotation file")


def annotation_list(path: str | Path, what: str) -> list:
    """A JSON/JSONL annotation file that must hold a list of ``what`` records."""
    records = load_json_records(path)
    if not isinstance(records, list):
        raise Vega3DError(f"{path}: expected a list of {what} records, found {type(records).__name__}")
    return records


def record_id(record, *, where: str, key: str = "id") -> tuple[str, str]:
    """``(id as string, where extended with the id)`` for an annotation record."""
    item_id = prediction_id(require(record, key, where=where), where=where)
    return item_id, f"{where} (id {item_id!r})"


def require(record, key: str, *, where: str):
    """``record[key]`` or a Vega3DError naming the record and the key."""
    if not isinstance(record, Mapping):
        raise Vega3DError(f"{where}: expected a JSON object, found {type(record).__name__}")
    if key not in record:
        raise Vega3DError(f"{where}: missing field {key!r} (keys: {sorted(record)})")
    return record[key]


def unique_ids(ids: list[str], *, source: str) -> list[str]:
    """Raise if an annotation file repeats an id."""
    seen: set[str] = set()
    for item_id in ids:
        if item_id in seen:
            raise Vega3DError(f"{source}: annotation id {item_id!r} appears more than once")
        seen.add(item_id)
    return ids


def finite_mean(values: list[float]) -> float:
    """Mean of a non-empty list (NaN for an empty one, which tables show as '-')."""
    return float(sum(values) / len(values)) if values else math.nan
