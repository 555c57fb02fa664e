"""JSON Schema files of the event contract, and the backward-compatibility rules they obey.

Each event type's schema is committed as `schemas/<event_type>.v<schema_version>.json`. A change
that a consumer of the committed version could not read (a field removed or renamed, a type,
enum or bound narrowed, a new required field) needs a new `schema_version`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from shopstream.events import EVENT_CLASSES, Event

SCHEMA_DIR = Path(str(resources.files("shopstream").joinpath("schemas")))
JsonSchema = dict[str, Any]


def current_version(event_class: type[Event]) -> int:
    return int(event_class.model_fields["schema_version"].default)


def schema_of(event_class: type[Event]) -> JsonSchema:
    return event_class.model_json_schema(mode="validation")


def schema_path(event_class: type[Event], directory: Path = SCHEMA_DIR) -> Path:
    event_type = event_class.model_fields["event_type"].default
    return directory / f"{event_type}.v{current_version(event_class)}.json"


def export_all(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_class in EVENT_CLASSES:
        path = schema_path(event_class, directory)
        path.write_text(
            json.dumps(schema_of(event_class), indent=2, ensure_ascii=False, sort_keys=True) + "\n",
            encoding="utf-8",
        )
        written.append(path)
    return written


def breaking_changes(old: JsonSchema, new: JsonSchema) -> list[str]:
    """Every way in which `new` rejects or misreads a document that `old` accepted."""
    comparison = _Comparison(old_root=old, new_root=new)
    comparison.compare(old, new, "$")
    return comparison.problems


@dataclass
class _Comparison:
    """One walk of an old schema against a new one, from their roots (where `$ref`s point),
    collecting the problems found."""

    old_root: JsonSchema
    new_root: JsonSchema
    problems: list[str] = field(default_factory=list)

    def compare(self, old: JsonSchema, new: JsonSchema, where: str) -> None:
        problems = self.problems
        new_alts = _alternatives(new, self.new_root)
        for old_alt in _alternatives(old, self.old_root):
            matches = [alt for alt in new_alts if _accepts_kind(alt, old_alt)]
            if not matches:
                problems.append(f"{where}: type {_kind(old_alt)!r} is no longer accepted")
                continue
            best = matches[0]
            if _kind(old_alt) == "enum":
                _compare_enum(old_alt, matches, where, problems)
            else:
                _compare_bounds(old_alt, best, where, problems)
            if _kind(old_alt) == "object":
                self.compare_object(old_alt, best, where)
            elif _kind(old_alt) == "array" and "items" in old_alt and "items" in best:
                self.compare(old_alt["items"], best["items"], where + "[]")

    def compare_object(self, old: JsonSchema, new: JsonSchema, where: str) -> None:
        problems = self.problems
        old_properties: dict[str, JsonSchema] = old.get("properties", {})
        new_properties: dict[str, JsonSchema] = new.get("properties", {})
        for name, old_property in old_properties.items():
            if name not in new_properties:
                problems.append(f"{where}.{name}: field removed or renamed")
                continue
            self.compare(old_property, new_properties[name], f"{where}.{name}")
        added_required = set(new.get("required", [])) - set(old.get("required", []))
        problems.extend(f"{where}.{name}: new required field" for name in sorted(added_required))
        if (
            old.get("additionalProperties") is not False
            and new.get("additionalProperties") is False
        ):
            problems.append(f"{where}: additional properties are no longer allowed")


def _resolve(schema: JsonSchema, root: JsonSchema) -> JsonSchema:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = {**root["$defs"][name], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _alternatives(schema: JsonSchema, root: JsonSchema) -> list[JsonSchema]:
    schema = _resolve(schema, root)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return [alt for option in schema[key] for alt in _alternatives(option, root)]
    return [schema]


def _kind(schema: JsonSchema) -> str:
    if "const" in schema or "enum" in schema:
        return "enum"
    kind = schema.get("type", "any")
    return "number" if kind == "integer" else str(kind)


def _accepts_kind(new: JsonSchema, old: JsonSchema) -> bool:
    new_kind, old_kind = _kind(new), _kind(old)
    if new_kind == "any":
        return True
    if old_kind == "enum":
        values = old.get("enum", [old.get("const")])
        return new_kind == "enum" or all(_json_kind(value) == new_kind for value in values)
    if old.get("type") == "number" and new.get("type") == "integer":
        return False
    return new_kind == old_kind


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), "any")


def _compare_enum(
    old: JsonSchema, candidates: list[JsonSchema], where: str, problems: list[str]
) -> None:
    accepted: set[str] = set()
    for candidate in candidates:
        if _kind(candidate) != "enum":
            return  # a plain type (e.g. any string) accepts every old value
        accepted |= {json.dumps(v) for v in candidate.get("enum", [candidate.get("const")])}
    old_values = {json.dumps(v) for v in old.get("enum", [old.get("const")])}
    if missing := sorted(old_values - accepted):
        problems.append(f"{where}: values {', '.join(missing)} are no longer accepted")


_UPPER_BOUNDS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
_LOWER_BOUNDS = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")


def _compare_bounds(old: JsonSchema, new: JsonSchema, where: str, problems: list[str]) -> None:
    problems.extend(
        f"{where}: {key} narrowed from {old.get(key, 'none')} to {new[key]}"
        for key in _UPPER_BOUNDS
        if key in new and (key not in old or new[key] < old[key])
    )
    problems.extend(
        f"{where}: {key} raised from {old.get(key, 'none')} to {new[key]}"
        for key in _LOWER_BOUNDS
        if key in new and (key not in old or new[key] > old[key])
    )
    if "pattern" in new and new.get("pattern") != old.get("pattern"):
        problems.append(f"{where}: pattern changed to {new['pattern']!r}")
    if "format" in new and new.get("format") != old.get("format"):
        problems.append(f"{where}: format changed to {new['format']!r}")
