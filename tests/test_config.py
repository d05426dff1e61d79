"""The config base: strict types, YAML-string floats, unknown keys, one-line errors."""

from typing import Literal

import pytest
from pydantic import Field

from vega3d import Vega3DError
from vega3d.config import Config, Float, parse, resolve_path


class Section(Config):
    steps: int = Field(1, ge=1)  # optimizer steps
    lr: Float = Field(1e-5, gt=0)  # learning rate
    mode: Literal["no", "bf16"] = "no"  # mixed precision
    name: str = "x"


def test_values_are_checked_strictly_but_yaml_exponents_parse():
    assert parse(Section, {"lr": "1e-4", "steps": 3}, "c.yaml").lr == pytest.approx(1e-4)
    cases = {
        "steps": (True, r"c\.yaml: train\.steps: input should be a valid integer, got True"),
        "lr": ("fast", r"train\.lr: input should be a valid number.*got 'fast'"),
        "mode": ("fp8", r"train\.mode: input should be 'no' or 'bf16', got 'fp8'"),
        "name": (3, r"train\.name: input should be a valid string, got 3"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(Vega3DError, match=message):
            parse(Section, {key: value}, "c.yaml", "train")
    with pytest.raises(Vega3DError, match=r"train\.steps: input should be greater than or equal to 1, got 0"):
        parse(Section, {"steps": 0}, "c.yaml", "train")
    with pytest.raises(Vega3DError, match=r"train\.lr: .*finite.*got inf|train\.lr: .*got 'inf'"):
        parse(Section, {"lr": "inf"}, "c.yaml", "train")
    with pytest.raises(Vega3DError, match=r"train\.stpes: unknown key"):
        parse(Section, {"stpes": 2}, "c.yaml", "train")
    with pytest.raises(Vega3DError, match=r"c\.yaml: section 'train' must be a mapping, got list"):
        parse(Section, [1], "c.yaml", "train")


def test_frozen_json_and_replace_rechecks(tmp_path):
    s = parse(Section, {}, "x")
    assert s.to_dict() == {"steps": 1, "lr": 1e-5, "mode": "no", "name": "x"}
    with pytest.raises(Exception, match="frozen"):
        s.steps = 2
    assert s.replace(steps=4).steps == 4
    with pytest.raises(Vega3DError, match="steps"):
        s.replace(steps=-1)
    assert resolve_path("a/b", tmp_path) == str(tmp_path / "a" / "b") and resolve_path("", tmp_path) == ""


class Outer(Config):
    train: Section = Section()


def test_direct_construction_is_one_line_and_nested_errors_keep_their_path():
    with pytest.raises(Vega3DError, match=r"^Section: steps: input should be greater than or equal to 1, got 0$"):
        Section(steps=0)
    with pytest.raises(Vega3DError, match=r"^Outer: train\.lr: input should be greater than 0, got -1"):
        Outer(train={"lr": -1})
    with pytest.raises(Vega3DError, match=r"^c\.yaml: run\.train\.mode: input should be 'no' or 'bf16', got 'x'"):
        parse(Outer, {"train": {"mode": "x"}}, "c.yaml", "run")


def test_describe_names_the_field_not_the_union_member_and_cuts_long_values():
    from vega3d.config import FileRecord, parse

    class Record(FileRecord):
        id: int | str  # a union: pydantic's location names each member (id.int, id.str)
        xs: list[int] = []

    with pytest.raises(
        Vega3DError, match=r"^f: id: input should be a valid integer or input should be a valid string, got None$"
    ):
        parse(Record, {"id": None}, "f")
    with pytest.raises(Vega3DError) as err:
        parse(Record, {"id": 1, "xs": "q" * 1000}, "f")
    assert str(err.value) == "f: xs: input should be a valid list, got '" + "q" * 199 + "..."
