"""Bytes to events and back: per-record decoding with a precise reason for every rejection."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from shopstream.events import EVENT_TYPES, Event, ResultEvent
from shopstream.runtime.records import Record

EventT = TypeVar("EventT", bound=Event)


class FailureReason(StrEnum):
    EMPTY = "empty"
    OVERSIZED = "oversized"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    MISSING_TENANT = "missing_tenant"
    UNEXPECTED_EVENT_TYPE = "unexpected_event_type"
    SCHEMA_VIOLATION = "schema_violation"
    PROCESSING_ERROR = "processing_error"


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    reason: FailureReason
    error_class: str
    message: str


class EventDecoder(Generic[EventT]):
    """Validates records against the event types one consumer accepts."""

    def __init__(self, accepted: type[EventT] | TypeAdapter[EventT], max_bytes: int) -> None:
        # A consumer of several event types passes a TypeAdapter of their discriminated union
        # (a union is not a `type`, so it cannot bind EventT directly).
        self._adapter: TypeAdapter[EventT] = (
            accepted if isinstance(accepted, TypeAdapter) else TypeAdapter(accepted)
        )
        self._max_bytes = max_bytes

    def decode(self, record: Record) -> EventT | DecodeFailure:
        value = record.value
        if not value:
            return DecodeFailure(FailureReason.EMPTY, "EmptyRecord", "record has no value")
        if len(value) > self._max_bytes:
            return DecodeFailure(
                FailureReason.OVERSIZED,
                "OversizedRecord",
                f"record is {len(value)} bytes; the limit is {self._max_bytes}",
            )
        try:
            return self._adapter.validate_json(value)
        except ValidationError as error:
            return classify(value, error)


def classify(value: bytes, error: ValidationError) -> DecodeFailure:
    """Turn a validation error into the most specific reason an operator can act on."""
    name = type(error).__name__
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as decode_error:
        return DecodeFailure(
            FailureReason.INVALID_UTF8, type(decode_error).__name__, str(decode_error)
        )
    errors = error.errors(include_url=False, include_input=False)
    if any(item["type"] == "json_invalid" for item in errors):
        return DecodeFailure(FailureReason.INVALID_JSON, name, _summary(errors))
    event_type = _event_type_of(value)
    # A discriminated union prefixes every location with the event type it tried.
    locations = [
        item["loc"][1:]
        if event_type is not None and item["loc"][:1] == (event_type,)
        else item["loc"]
        for item in errors
    ]
    if any(location[:1] == ("tenant_id",) for location in locations):
        return DecodeFailure(FailureReason.MISSING_TENANT, name, _summary(errors))
    if event_type is not None and any(
        location[:1] == ("event_type",) or item["type"] == "union_tag_invalid"
        for location, item in zip(locations, errors, strict=True)
    ):
        known = "a known" if event_type in EVENT_TYPES else "an unknown"
        return DecodeFailure(
            FailureReason.UNEXPECTED_EVENT_TYPE,
            name,
            f"{event_type!r} is {known} event type that this consumer does not accept",
        )
    return DecodeFailure(FailureReason.SCHEMA_VIOLATION, name, _summary(errors))


def _event_type_of(value: bytes) -> str | None:
    try:
        document = json.loads(value)
    except (ValueError, RecursionError):
        return None
    event_type = document.get("event_type") if isinstance(document, dict) else None
    return event_type if isinstance(event_type, str) else None


def _summary(errors: list[ErrorDetails]) -> str:
    parts = []
    for item in errors[:5]:
        location = ".".join(str(part) for part in item["loc"]) or "<root>"
        parts.append(f"{location}: {item['msg']}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts)[:3_500] + more


def event_headers(event: Event) -> dict[str, str]:
    """Kafka headers that let tools route and trace without parsing the body."""
    headers = {
        "event_type": event.event_type,
        "schema_version": str(event.schema_version),
        "tenant_id": event.tenant_id,
        "event_id": str(event.event_id),
        "content-type": "application/json",
    }
    if isinstance(event, ResultEvent):
        headers["model_id"] = event.lineage.model_id
        headers["model_revision"] = event.lineage.model_revision
        if event.lineage.prompt_version is not None:
            headers["prompt_version"] = event.lineage.prompt_version
    return headers


class EncodedHeaders:
    """`event_headers` as Kafka header tuples, for the per-event publish path.

    Only the event id differs between the results of one batch; the other headers (type,
    schema version, tenant, lineage) are encoded once per distinct combination and reused.
    """

    def __init__(self, max_entries: int = 4_096) -> None:
        self._max_entries = max_entries
        self._known: dict[tuple[object, ...], tuple[_Pairs, _Pairs]] = {}

    def __call__(self, event: Event) -> list[tuple[str, bytes]]:
        if isinstance(event, ResultEvent):
            lineage = event.lineage
            key: tuple[object, ...] = (
                event.event_type,
                event.schema_version,
                event.tenant_id,
                lineage.model_id,
                lineage.model_revision,
                lineage.prompt_version,
            )
        else:
            key = (event.event_type, event.schema_version, event.tenant_id)
        found = self._known.get(key)
        if found is None:
            if len(self._known) >= self._max_entries:
                self._known.clear()
            encoded = [
                (name, value.encode("utf-8")) for name, value in event_headers(event).items()
            ]
            position = next(i for i, (name, _) in enumerate(encoded) if name == "event_id")
            found = self._known[key] = (encoded[:position], encoded[position + 1 :])
        before, after = found
        return [*before, ("event_id", str(event.event_id).encode("utf-8")), *after]


_Pairs = list[tuple[str, bytes]]
