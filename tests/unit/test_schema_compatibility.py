"""The committed JSON Schemas are the contract: changes must stay readable or bump the version."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from shopstream.events import EVENT_CLASSES, Event
from shopstream.schemas import breaking_changes, schema_of, schema_path

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("event_class", EVENT_CLASSES, ids=lambda cls: cls.__name__)
def test_current_schema_matches_the_committed_file(event_class: type[Event]) -> None:
    path = schema_path(event_class)
    assert path.exists(), (
        f"{path.name} is missing: run `shopstream schemas export` after bumping schema_version"
    )
    committed = json.loads(path.read_text(encoding="utf-8"))
    current = schema_of(event_class)
    problems = breaking_changes(committed, current)
    assert not problems, (
        f"{event_class.__name__} breaks schema v{path.stem.rsplit('.v', 1)[1]} "
        f"(bump schema_version and export): {problems}"
    )
    assert current == committed, "compatible change: run `shopstream schemas export`"


def schemas(old: type[BaseModel], new: type[BaseModel]) -> list[str]:
    return breaking_changes(old.model_json_schema(), new.model_json_schema())


class Base(BaseModel):
    name: str = Field(max_length=100)
    size: float
    kind: Literal["a", "b"]
    note: str | None = None


def test_identical_schema_has_no_breaking_change() -> None:
    assert schemas(Base, Base) == []


def test_adding_an_optional_field_is_compatible() -> None:
    class Added(Base):
        extra: int | None = None

    assert schemas(Base, Added) == []


def test_widening_is_compatible() -> None:
    class Wider(BaseModel):
        name: str = Field(max_length=1_000)
        size: float | str
        kind: Literal["a", "b", "c"]
        note: str | None = None

    assert schemas(Base, Wider) == []


def test_removed_field_is_breaking() -> None:
    class Removed(BaseModel):
        name: str = Field(max_length=100)
        size: float
        kind: Literal["a", "b"]

    assert any("note: field removed" in p for p in schemas(Base, Removed))


def test_narrowed_type_bound_and_enum_are_breaking() -> None:
    class Narrower(BaseModel):
        name: str = Field(max_length=10)
        size: int
        kind: Literal["a"]
        note: str

    problems = schemas(Base, Narrower)
    assert any("maxLength narrowed" in p for p in problems)
    assert any("size: type 'number'" in p for p in problems)
    assert any('"b"' in p for p in problems)
    assert any("note: type 'null'" in p for p in problems)
    assert any("note: new required field" in p for p in problems)
