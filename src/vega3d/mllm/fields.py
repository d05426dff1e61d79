"""Type and range checks for the config dataclasses (model, data, train, simulator sections).

:func:`check_fields` walks a dataclass's fields, checks each value against the field's
annotation (``int``, ``float``, ``bool``, ``str``, ``dict``, ``list`` and ``X | None``) and
against an optional rule (:func:`at_least`, :func:`above`, :func:`between`, :func:`one_of`),
and raises a one-line :class:`Vega3DError` naming ``section.field``, what was expected and
what was found. ``bool`` is not accepted where a number is expected. For ``float`` fields a
string that parses as a finite number is converted (PyYAML reads ``1e-4`` — without a
dot — as a string); every other mismatch is an error.
"""

from __future__ import annotations

import dataclasses
import math
import typing

from vega3d.errors import Vega3DError


def at_least(lo):
    return lambda v: None if v >= lo else f"expected >= {lo}"


def above(lo):
    return lambda v: None if v > lo else f"expected > {lo}"


def between(lo, hi):
    return lambda v: None if lo <= v <= hi else f"expected a value in [{lo}, {hi}]"


def one_of(*choices):
    return lambda v: None if v in choices else f"expected one of {', '.join(map(str, choices))}"


_NAMES = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    dict: "a mapping",
    list: "a list",
}


def _convert(value, kind, name: str):
    """``value`` as ``kind`` (see the module docstring) or raise."""
    if kind is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        bool: isinstance(value, bool),
        str: isinstance(value, str),
        dict: isinstance(value, dict),
        list: isinstance(value, (list, tuple)),
    }[kind]
    if not ok:
        raise Vega3DError(f"{name}: expected {_NAMES[kind]}, got {value!r} ({type(value).__name__})")
    return float(value) if kind is float else value


def check_fields(obj, section: str, rules: dict | None = None) -> None:
    """Check (and, for floats given as strings, convert in place) every field of the frozen
    dataclass ``obj``; ``rules`` maps field names to range/choice rules applied to non-None
    values. Errors read ``section.field: expected ..., got ...``."""
    rules = rules or {}
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        name, value = f"{section}.{f.name}", getattr(obj, f.name)
        hint = hints[f.name]
        args = typing.get_args(hint)
        optional = type(None) in args
        kinds = [a for a in args if a is not type(None)] if args else [hint]
        kinds = [typing.get_origin(k) or k for k in kinds]
        if value is None:
            if optional:
                continue
            raise Vega3DError(f"{name}: expected {_NAMES.get(kinds[0], kinds[0])}, got null")
        if kinds[0] not in _NAMES:  # a type this module does not check
            continue
        converted = _convert(value, kinds[0], name)
        if converted is not value:
            object.__setattr__(obj, f.name, converted)
        rule = rules.get(f.name)
        problem = rule(converted) if rule else None
        if problem:
            raise Vega3DError(f"{name}: {problem}, got {converted!r}")
