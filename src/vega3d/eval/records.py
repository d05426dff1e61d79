"""The one predictions format (JSONL keyed by id) and the checks of annotation and prediction records.

Predictions: one JSON object per line, ``{"id": ..., <fields>}``; the fields per
benchmark are in :data:`PREDICTION_FIELDS`. Ids are matched to annotation ids as
strings (``12`` and ``"12"`` are the same id). Every annotation id needs exactly
one prediction and every prediction must belong to an annotation: missing,
duplicate or unknown ids, unknown keys, malformed lines, wrong types and
non-finite boxes are :class:`Vega3DError` naming the file, line and id.

A runner only has to produce that file; :func:`write_predictions` validates the
records with the same rules before writing, so a bad runner fails at write time.

Every record a user gives (a predictions line, an annotation file's record) is checked once,
where it is read, by :func:`check_record` against a field spec (:data:`KINDS`); the
benchmark modules trust the cleaned values after that.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from vega3d.errors import Vega3DError
from vega3d.eval.boxes import as_box
from vega3d.files import atomic_write_bytes, read_json

_BAD = object()


def _number_text(value):
    """Text as given; a number as its ``repr`` (VSI-Bench stores numerical answers either way)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return value if isinstance(value, str) else _BAD


def _positive_number(value):
    """A finite number > 0 (or its text), as :func:`_number_text` gives it; else ``_BAD``."""
    text = _number_text(value)
    try:
        number = float(text)
    except (TypeError, ValueError, OverflowError):
        return _BAD
    return text if math.isfinite(number) and number > 0 else _BAD


# kind -> (what a value must be, in words; value -> cleaned value, or _BAD). The box kinds are
# checked by :func:`~vega3d.eval.boxes.as_box`; a tuple kind lists the allowed values.
KINDS: dict[str, tuple[str, Callable]] = {
    "id": (
        "an integer or a string",
        lambda v: str(v) if isinstance(v, (int, str)) and not isinstance(v, bool) else _BAD,
    ),
    "text": ("a string", lambda v: v if isinstance(v, str) else _BAD),
    "texts": ("a non-empty list of strings", lambda v: v if _strings(v) and v else _BAD),
    "strings": ("a list of strings", lambda v: v if _strings(v) else _BAD),
    "number_or_text": ("text or a number", _number_text),
    "positive_number": ("a number > 0 (or its text)", _positive_number),
    "list": ("a list", lambda v: v if isinstance(v, list) else _BAD),
    "single": ("a list of exactly one answer", lambda v: v if isinstance(v, list) and len(v) == 1 else _BAD),
    "box": ("6 numbers [cx, cy, cz, dx, dy, dz]", None),
    "boxes": ("a list of boxes (possibly empty)", None),
    "scores": ("a list of finite numbers", lambda v: v if _finite_numbers(v) else _BAD),
}

# Fields of a prediction record per benchmark (spec of :func:`check_record`; ``?``: optional).
PREDICTION_FIELDS: dict[str, dict[str, str]] = {
    "vsibench": {"id": "id", "prediction": "text"},
    "scanqa": {"id": "id", "prediction": "text"},
    "sqa3d": {"id": "id", "prediction": "text"},
    "scanrefer": {"id": "id", "box": "box", "scores?": "scores"},  # scores: a grounding head's raw scores, kept
    "multi3drefer": {"id": "id", "boxes": "boxes", "scores?": "scores"},
    "scan2cap": {"id": "id", "prediction": "text", "box?": "box"},
}


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(s, str) for s in value)


def _finite_numbers(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value
    )


def _lookup(record, path: str):
    """``(value, found)`` at a dotted path (``metadata.answers``, ``conversations.1.value``)."""
    value = record
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None, False
    return value, True


def _clean(value, kind, where: str):
    """``value`` of ``kind`` cleaned; else an error naming ``where``, what was found and what was expected."""
    if kind == "box":
        return as_box(value, where=where).tolist()
    if kind == "boxes" and isinstance(value, list):
        return [as_box(box, where=f"{where}[{i}]").tolist() for i, box in enumerate(value)]
    expect, clean = (f"one of {kind}", lambda v: v if v in kind else _BAD) if isinstance(kind, tuple) else KINDS[kind]
    cleaned = _BAD if clean is None else clean(value)
    if cleaned is _BAD:
        raise Vega3DError(f"{where}: expected {expect}, found {type(value).__name__} {value!r}")
    return cleaned


def check_record(record, spec: Mapping[str, str | tuple], where: str, *, only: str | None = None) -> dict:
    """The fields ``spec`` names (``{path: kind}``, kinds in :data:`KINDS` or a tuple of allowed
    values; a path ending in ``?`` is optional and may be null), each checked and cleaned, by path.

    ``where`` names the record (``file:line``, ``file record 3``); once a field of kind ``"id"`` is
    checked it is extended with ``(id '...')``. ``only``: no other top-level keys are allowed (the
    text names the format in the error). Errors name the record, the field, what was found and
    what was expected.
    """
    if not isinstance(record, Mapping):
        raise Vega3DError(f"{where}: expected a JSON object, found {type(record).__name__}")
    out: dict = {}
    for path, kind in spec.items():
        name = path.rstrip("?")
        value, found = _lookup(record, name)
        if not found and name == path:
            raise Vega3DError(f"{where}: missing field {name!r} (keys: {sorted(record)})")
        if found:
            out[name] = None if value is None and name != path else _clean(value, kind, f"{where} field {name!r}")
        if kind == "id":
            where = f"{where} (id {out[name]!r})"
            unknown = sorted(set(record) - {p.rstrip("?").split(".")[0] for p in spec}) if only else []
            if unknown:
                raise Vega3DError(f"{where}: unknown key(s) {unknown} for {only}; expected {sorted(spec)}")
    return out


def parse_lines(lines: Iterable[str], source) -> Iterator[tuple[object, str]]:
    """``(parsed line, "source:line")`` for every non-blank line of a JSONL text, in order
    (NaN/Infinity parse: the box checks then name the id)."""
    for n, line in enumerate(lines, start=1):
        if line.strip():
            try:
                yield json.loads(line), f"{source}:{n}"
            except ValueError as err:
                raise Vega3DError(
                    f"{source}:{n}: malformed JSON line ({err}); expected one JSON object per line"
                ) from None


def jsonl_records(path: str | Path, what: str) -> Iterator[tuple[object, str]]:
    """``(parsed line, "path:line")`` for every non-blank line of a JSONL file, in order
    (``what``: the file's role, for the error when it is missing)."""
    path = Path(path)
    if not path.is_file():
        raise Vega3DError(f"{what} {path} does not exist")
    yield from parse_lines(path.read_text(encoding="utf-8").split("\n"), path)


def read_predictions(path: str | Path, benchmark: str) -> dict[str, dict]:
    """Read a predictions JSONL file into ``{id: record}`` (see module docstring).

    Blank lines are ignored; everything else must be a valid record.
    """
    return as_predictions(path, benchmark)


def as_predictions(predictions, benchmark: str) -> dict[str, dict]:
    """Accept a JSONL path, ``{id: record}`` or a list of records; validate all:
    ``{id: record without its id}``, boxes as lists of floats, ids unique."""
    if benchmark not in PREDICTION_FIELDS:
        raise Vega3DError(f"unknown benchmark {benchmark!r}; expected one of {sorted(PREDICTION_FIELDS)}")
    if isinstance(predictions, (str, Path)):
        items = jsonl_records(predictions, "predictions file")
    elif isinstance(predictions, Mapping):
        items = [
            ({**v, "id": k} if isinstance(v, Mapping) else v, f"predictions[{k!r}]") for k, v in predictions.items()
        ]
    else:
        items = [(record, f"predictions[{i}]") for i, record in enumerate(predictions)]
    checked = [(check_prediction(record, benchmark, where), where) for record, where in items]
    unique_ids((record["id"], where) for record, where in checked)
    return {record.pop("id"): record for record, _ in checked}


def check_prediction(record, benchmark: str, where: str) -> dict:
    """One prediction record of ``benchmark`` (a known one), checked: ``{"id": str, <fields>}``."""
    return check_record(record, PREDICTION_FIELDS[benchmark], where, only=f"benchmark {benchmark!r}")


def write_predictions(path: str | Path, benchmark: str, records: Iterable[Mapping]) -> int:
    """Validate ``records`` and write them as predictions JSONL (atomically); return the count.

    The hook for runners: produce one record per annotation id with the fields
    of :data:`PREDICTION_FIELDS`, then call this.
    """
    validated = as_predictions(list(records), benchmark)
    lines = [json.dumps({"id": item_id, **record}, allow_nan=False) + "\n" for item_id, record in validated.items()]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(path), "".join(lines).encode("utf-8"))
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


def scoring_inputs(predictions, annotations, benchmark: str, loader, item_type: type) -> tuple[list, dict]:
    """What a benchmark's ``evaluate`` scores: the annotation items (a path read with ``loader``,
    or an already loaded list of ``item_type``) and the predictions (:func:`as_predictions`),
    one prediction per annotation id."""
    if isinstance(annotations, (str, Path)):
        items = loader(annotations)
    else:
        items = list(annotations)
        wrong = next((i for i, item in enumerate(items) if not isinstance(item, item_type)), None)
        if wrong is not None:
            raise Vega3DError(
                f"annotations[{wrong}]: expected a path or the output of load_annotations ({item_type.__name__} "
                f"items), found {type(items[wrong]).__name__}"
            )
    preds = as_predictions(predictions, benchmark)
    match_ids(preds, [item.id for item in items], benchmark)
    return items, preds


def load_json_records(path: str | Path):
    """Read a JSON (``.json``) or JSON-lines (``.jsonl``, as a list) annotation file."""
    if Path(path).suffix == ".jsonl":
        return [record for record, _ in jsonl_records(path, "annotation file")]
    return read_json(path, "annotation file")


def build_items(records, source, build: Callable, what: str) -> list:
    """``build(record, "source record i")`` for every record of an annotation file, which must be a
    list of ``what`` records with unique ids."""
    if not isinstance(records, list):
        raise Vega3DError(f"{source}: expected a list of {what} records, found {type(records).__name__}")
    items = [build(record, f"{source} record {i}") for i, record in enumerate(records)]
    unique_ids((item.id, f"{source} record {i}") for i, item in enumerate(items))
    return items


def unique_ids(ids: Iterable[tuple[str, str]]) -> None:
    """Every id once in its file (predictions or annotations): ``ids`` are ``(id, where)`` in file
    order, ``where`` a ``file:line`` or a record's name; a repeated id names both places."""
    first: dict[str, str] = {}
    for item_id, where in ids:
        if item_id in first:
            line = re.search(r":(\d+)$", first[item_id])  # a file's "path:line", else the record's name
            seen = f"line {line[1]}" if line else first[item_id]
            raise Vega3DError(
                f"{where}: duplicate id {item_id!r} (first seen on {seen}): the id appears more than once"
            )
        first[item_id] = where


def finite_mean(values: list[float]) -> float:
    """Mean of a non-empty list (NaN for an empty one, which tables show as '-')."""
    return float(sum(values) / len(values)) if values else math.nan
