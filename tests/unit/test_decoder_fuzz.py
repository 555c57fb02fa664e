"""Property-based: whatever bytes arrive, every consumer's decoder answers with an event or a
dead-letter reason, never an exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopstream.events import (
    ActivityRecorded,
    CopyRequested,
    Event,
    KnowledgeUpserted,
    ProductUpserted,
    QuestionAsked,
    RecommendationsRequested,
    ReviewSubmitted,
)
from shopstream.runtime.codec import DecodeFailure, EventDecoder
from shopstream.runtime.records import Record

pytestmark = pytest.mark.unit

INPUT_EVENTS: list[type[Event]] = [
    ProductUpserted,
    CopyRequested,
    KnowledgeUpserted,
    QuestionAsked,
    ActivityRecorded,
    RecommendationsRequested,
    ReviewSubmitted,
]
DECODERS = [EventDecoder(cls, max_bytes=64 * 1024) for cls in INPUT_EVENTS]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=15), children, max_size=5)
    ),
    max_leaves=30,
)


def envelope_like(payload: object, tenant: object) -> dict[str, object]:
    return {"event_type": "review.submitted", "tenant_id": tenant, "payload": payload}


def check(value: bytes) -> None:
    for decoder in DECODERS:
        result = decoder.decode(Record("t", 0, 0, None, value, ()))
        assert isinstance(result, Event | DecodeFailure)
        if isinstance(result, DecodeFailure):
            assert result.message, "every rejection carries a reason"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2_000))
def test_random_bytes(value: bytes) -> None:
    check(value)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json(document: object) -> None:
    check(json.dumps(document).encode())


@settings(max_examples=300, deadline=None)
@given(json_values, st.one_of(st.none(), st.text(max_size=80), st.integers()))
def test_envelopes_with_wrong_payloads_and_tenants(payload: object, tenant: object) -> None:
    check(json.dumps(envelope_like(payload, tenant)).encode())


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=50_000))
def test_deep_nesting(depth: int) -> None:
    check(b"[" * depth + b"]" * depth)
    check(b'{"a":' * depth + b"1" + b"}" * depth)


def test_huge_text_is_oversized_not_parsed() -> None:
    event = json.loads(
        ReviewSubmitted(
            tenant_id="acme", payload={"review_id": "r", "product_id": "p", "text": "x"}
        ).to_json()
    )
    event["payload"]["text"] = "好" * 200_000
    result = DECODERS[-1].decode(Record("t", 0, 0, None, json.dumps(event).encode(), ()))
    assert isinstance(result, DecodeFailure)
    assert result.reason.value == "oversized"
