"""User-facing configs: pydantic models declared once, checked once, errors on one line.

Every config a user writes (a training YAML's sections, probe options, ...) is a subclass of
:class:`Config`: unknown keys are errors, values are checked strictly (``true`` is not a number,
``3`` is not a string), except that a :data:`Float` may be written as a string that YAML 1.1
leaves unparsed (``1e-4``). Declare each field with its type, its range (``Field(ge=...)``) or
its choices (``Literal``) and a comment beside it; domain checks (paths, model folders) are
named validators on the model. :func:`parse` turns pydantic's report into one
:class:`~vega3d.Vega3DError` line naming the file, the field, what was found and what was
expected.
"""

from __future__ import annotations

import math
import re
from contextvars import ContextVar
from numbers import Integral
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from vega3d.errors import Vega3DError


def _number_from_string(value: Any) -> Any:
    """``"1e-4"`` → ``1e-4`` (PyYAML reads exponents without a dot as strings); other values as given."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value


#: A finite float that may be written as a numeric string (``lr: 1e-4`` in YAML).
Float = Annotated[float, BeforeValidator(_number_from_string)]


def is_int(value, lo: int | None = None, hi: int | None = None) -> bool:
    """``value`` is an integer (a numpy one too; not a bool) in ``[lo, hi]`` (None: unbounded)."""
    return (
        isinstance(value, Integral)
        and not isinstance(value, bool)
        and (lo is None or value >= lo)
        and (hi is None or value <= hi)
    )


def _int_from_numpy(value: Any) -> Any:
    """A numpy integer → the ``int`` it is; other values (bools included) as given."""
    return int(value) if is_int(value) else value


#: An integer argument; numpy integers are accepted as the ints they are (bools are not integers).
Int = Annotated[int, BeforeValidator(_int_from_numpy)]


#: How deep the current validation is (pydantic calls ``__init__`` of nested configs too).
_depth: ContextVar[int] = ContextVar("vega3d_config_depth", default=0)


class Config(BaseModel):
    """Base of the user-facing configs (see the module docstring). Frozen; :meth:`to_dict` is JSON.

    Built directly (``TrainSettings(lr=-1)``), a bad value is a one-line :class:`Vega3DError`
    naming the class and field; inside :func:`parse` or a larger config, pydantic's error travels
    up to the outermost call, which names the whole path (``train.lr``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)
    #: The config section this class is (named in errors: ``Vega3DConfig: model.llm: ...``).
    SECTION: ClassVar[str] = ""
    #: What a bad value given directly is said to belong to (None: the class name; "": nothing).
    WHAT: ClassVar[str | None] = None

    def __init__(self, **data):
        token = _depth.set(_depth.get() + 1)
        try:
            super().__init__(**data)
        except ValidationError as err:
            if _depth.get() > 1:
                raise
            raise self.error(err, data) from None
        finally:
            _depth.reset(token)

    @classmethod
    def error(cls, err: ValidationError, data: dict) -> Vega3DError:
        """The one-line error for a bad value given directly: ``WHAT: field: got VALUE; expected
        DESCRIPTION`` when the field declares a ``description`` (what it expects, in words), else
        pydantic's message for it (:func:`describe`)."""
        what = cls.__name__ if cls.WHAT is None else cls.WHAT
        prefix = f"{what}: " if what else ""
        loc = err.errors(include_url=False)[0]["loc"]
        field = cls.model_fields.get(str(loc[0])) if loc else None
        if field is None or not field.description or loc[0] not in data:
            return Vega3DError(f"{prefix}{describe(err, cls.SECTION)}")
        return Vega3DError(f"{prefix}{loc[0]}: got {shown(data[loc[0]])}; expected {field.description}")

    @classmethod
    def model_validate(cls, obj, **kwargs):
        """pydantic's; a bad value raises its ``ValidationError`` (the caller names the source)."""
        token = _depth.set(_depth.get() + 1)
        try:
            return super().model_validate(obj, **kwargs)
        finally:
            _depth.reset(token)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def replace(self, **changes):
        """A copy with ``changes`` applied and checked like the original."""
        return parse(type(self), {**self.model_dump(), **changes}, type(self).__name__)


class FileRecord(Config):
    """A record of a file that other code wrote (a release's ``config.json``, a dataset's meta file,
    a benchmark's JSON records): the fields vega3d reads are declared and checked like a config's
    (read with :func:`parse`); the file's other keys are ignored (``extra="allow"`` in a subclass
    keeps them in ``model_extra``)."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())  # merged with Config's


class SafetensorsIndex(FileRecord):
    """A ``*.safetensors.index.json`` (transformers' and diffusers' sharded weights)."""

    weight_map: dict[str, str] = Field(min_length=1)  # tensor name -> the shard file that holds it


#: A step of pydantic's error location that names a member of a union (``int``, ``list[str]``,
#: ``function-after[...]``), not a field: left out of the location users read.
_UNION_MEMBER = re.compile(r"^(int|float|str|bool|bytes|none|list|dict|tuple|set|literal|nullable|is-instance"
                           r"|function-(after|before|plain|wrap)|lax-or-strict|json-or-python|constrained-\w+)(\[.*\])?$")  # fmt: skip


def shown(value: Any, limit: int = 200) -> str:
    """``repr(value)`` for an error message, cut at ``limit`` characters (``...`` when cut)."""
    text = repr(value)
    return text[:limit] + ("..." if len(text) > limit else "")


def describe(err: ValidationError, prefix: str = "") -> str:
    """pydantic's first error as ``field.sub: message, got VALUE`` (``prefix`` + dotted location;
    the value's repr cut at 200 characters)."""
    errors = err.errors(include_url=False)

    def steps(error) -> tuple:
        return tuple(p for p in error["loc"] if not (isinstance(p, str) and _UNION_MEMBER.match(p)))

    first = errors[0]
    where = steps(first)
    loc = ".".join(str(p) for p in (*([prefix] if prefix else []), *where))
    # a union's value (a member left out of the location): what each member said, in one message
    said = [e["msg"] for e in errors if steps(e) == where] if where != first["loc"] else [first["msg"]]
    msg = " or ".join(dict.fromkeys(m[0].lower() + m[1:] for m in said))
    if first["type"] == "extra_forbidden":
        return f"{loc}: unknown key"
    if first["type"] == "missing":
        return f"{loc}: required, missing"
    return f"{loc}: {msg}, got {shown(first.get('input'))}"


def parse(cls: type[Config], data: Any, where: str, section: str = ""):
    """``cls`` validated from ``data``; a :class:`Vega3DError` ``where: section.field: ...`` otherwise.

    ``where``: the file or argument the data came from; ``section``: its name inside it."""
    if not isinstance(data, dict):
        name = f"section '{section}' must be" if section else "expected"
        raise Vega3DError(f"{where}: {name} a mapping, got {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise Vega3DError(f"{where}: {describe(err, section)}") from None


def resolve_path(value: str | None, root: Path) -> str | None:
    """A user path relative to ``root`` (the config file's folder), ``~`` expanded; None/"" kept."""
    if not value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (root / path).resolve())
