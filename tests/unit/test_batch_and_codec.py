"""Per-record decoding, dead-letter reasons and failure isolation, without a broker."""

from __future__ import annotations

import base64
import json
import pickle
import uuid
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from shopstream.events import (
    RESULT_ID_NAMESPACE,
    Lineage,
    Producer,
    ReviewScored,
    ReviewSubmitted,
    result_id,
)
from shopstream.runtime.batch import FatalServiceError, Publication, process_batch
from shopstream.runtime.codec import (
    DecodeFailure,
    EncodedHeaders,
    EventDecoder,
    FailureReason,
    event_headers,
)
from shopstream.runtime.dead_letters import REPLAY_HEADER, dead_letter_for
from shopstream.runtime.records import Record

pytestmark = pytest.mark.unit


def review(text: str = "ok", tenant: str = "acme") -> ReviewSubmitted:
    return ReviewSubmitted(
        tenant_id=tenant, payload={"review_id": "r", "product_id": "p", "text": text}
    )


def record(value: bytes, offset: int = 0, headers: tuple[tuple[str, bytes], ...] = ()) -> Record:
    return Record("in", 0, offset, b"key", value, headers)


decoder = EventDecoder(ReviewSubmitted, max_bytes=2_048)


def reason(value: bytes) -> FailureReason:
    result = decoder.decode(record(value))
    assert isinstance(result, DecodeFailure), result
    return result.reason


def test_valid_event_decodes() -> None:
    event = review()
    assert decoder.decode(record(event.to_json())) == event


def test_each_kind_of_bad_record_gets_its_own_reason() -> None:
    good = json.loads(review().to_json())
    no_tenant = {k: v for k, v in good.items() if k != "tenant_id"}
    bad_tenant = {**good, "tenant_id": "has spaces"}
    wrong_type = {**good, "payload": {**good["payload"], "rating": "high"}}
    other_event = {**good, "event_type": "question.asked"}
    unknown_field = {**good, "surprise": 1}
    assert reason(b"") is FailureReason.EMPTY
    assert reason(b"x" * 3_000) is FailureReason.OVERSIZED
    assert reason(b'{"a": "\xff"}') is FailureReason.INVALID_UTF8
    assert reason(b"{nope") is FailureReason.INVALID_JSON
    assert reason(b"[" * 100 + b"]" * 100) is FailureReason.SCHEMA_VIOLATION
    assert reason(b"[" * 1_000 + b"]" * 1_000) is FailureReason.INVALID_JSON  # too deep
    assert reason(json.dumps(no_tenant).encode()) is FailureReason.MISSING_TENANT
    assert reason(json.dumps(bad_tenant).encode()) is FailureReason.MISSING_TENANT
    assert reason(json.dumps(wrong_type).encode()) is FailureReason.SCHEMA_VIOLATION
    assert reason(json.dumps(other_event).encode()) is FailureReason.UNEXPECTED_EVENT_TYPE
    assert reason(json.dumps(unknown_field).encode()) is FailureReason.SCHEMA_VIOLATION


def test_lone_surrogate_is_rejected() -> None:
    good = review().to_json().replace(b'"ok"', b'"\\ud800"')
    assert reason(good) is FailureReason.INVALID_JSON


def test_lone_surrogate_built_in_python_is_rejected() -> None:
    # JSON input meets pydantic's parser; a model built from Python values meets the check.
    with pytest.raises(ValidationError, match="review_id"):
        ReviewSubmitted(
            tenant_id="acme", payload={"review_id": "r\ud800", "product_id": "p1", "text": "ok"}
        )


def test_text_length_limits_hold_on_json_and_on_python_input() -> None:
    too_long = "r" * 129  # an EntityId holds at most 128 characters
    raw = review().to_json().replace(b'"review_id":"', b'"review_id":"' + too_long[1:].encode())
    assert reason(raw) is FailureReason.SCHEMA_VIOLATION
    with pytest.raises(ValidationError, match="at most 128 characters"):
        ReviewSubmitted(
            tenant_id="acme", payload={"review_id": too_long, "product_id": "p1", "text": "ok"}
        )


def test_dead_letter_keeps_original_bytes_headers_and_tenant() -> None:
    raw = record(b"{broken", offset=42, headers=(("tenant_id", b"acme"), (REPLAY_HEADER, b"1")))
    failure = DecodeFailure(FailureReason.INVALID_JSON, "ValidationError", "bad json")
    letter = dead_letter_for(raw, failure, Producer(name="svc", version="1"))
    assert letter.tenant_id == "acme"
    assert base64.b64decode(letter.payload.original_value_b64) == b"{broken"
    assert base64.b64decode(letter.payload.original_key_b64 or "") == b"key"
    assert letter.payload.original_offset == 42
    assert letter.payload.reason == "invalid_json"
    assert letter.payload.replays == 1


class CountingHandler:
    """A fake handler that fails whenever a batch contains a poisoned review."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def __call__(self, events: Sequence[ReviewSubmitted]) -> list[Publication]:
        self.calls.append(len(events))
        if any("POISON" in event.payload.text for event in events):
            raise RuntimeError("model choked")
        return [Publication("out", event) for event in events]


async def test_failing_records_are_isolated_by_bisection() -> None:
    events = [review(f"text {i}") for i in range(16)]
    events[5] = review("POISON a")
    events[11] = review("POISON b")
    handler = CountingHandler()
    outcome = await process_batch(
        [record(e.to_json(), i) for i, e in enumerate(events)], decoder, handler
    )
    assert len(outcome.publications) == 14
    assert sorted(r.offset for r, _ in outcome.failures) == [5, 11]
    assert all(f.reason is FailureReason.PROCESSING_ERROR for _, f in outcome.failures)
    assert all(f.error_class == "RuntimeError" for _, f in outcome.failures)
    assert handler.calls[0] == 16
    assert len(handler.calls) < 16, "bisection, not one call per record"


async def test_decode_failures_and_good_records_in_one_batch() -> None:
    handler = CountingHandler()
    records = [record(review().to_json(), 0), record(b"{", 1), record(review().to_json(), 2)]
    outcome = await process_batch(records, decoder, handler)
    assert handler.calls == [2]
    assert [r.offset for r, _ in outcome.failures] == [1]
    assert len(outcome.publications) == 2


async def test_fatal_errors_propagate_instead_of_dead_lettering() -> None:
    async def fatal(events: Sequence[ReviewSubmitted]) -> list[Publication]:
        raise FatalServiceError("CUDA device lost")

    with pytest.raises(FatalServiceError):
        await process_batch([record(review().to_json())], decoder, fatal)


async def test_tombstones_are_skipped_while_empty_values_are_dead_lettered() -> None:
    from aiokafka import ConsumerRecord  # noqa: PLC0415

    def raw(value: bytes | None, offset: int) -> Record:
        return Record.of(ConsumerRecord("in", 0, offset, 0, 0, b"acme:p1", value, None, 0, 0, []))

    seen: list[ReviewSubmitted] = []

    async def handler(events: Sequence[ReviewSubmitted]) -> list[Publication]:
        seen.extend(events)
        return []

    batch = [raw(None, 0), raw(b"", 1), raw(review().to_json(), 2)]
    outcome = await process_batch(batch, decoder, handler)
    assert outcome.tombstones == 1
    assert [failure.reason for _, failure in outcome.failures] == [FailureReason.EMPTY]
    assert len(seen) == 1


def test_a_tombstone_publication_needs_and_keeps_its_key() -> None:
    tombstone = Publication.tombstone("out", "acme:p1:en")
    assert tombstone.event is None
    assert tombstone.key_bytes() == b"acme:p1:en"
    with pytest.raises(ValueError, match="explicit key"):
        Publication("out", None).key_bytes()


@pytest.mark.parametrize("name", ["echo|1", "sentiment|x|rev|p1|zh", "描述|商品|中文", ""])
def test_result_id_is_uuid5_in_the_result_namespace(name: str) -> None:
    made, expected = result_id(name), uuid.uuid5(RESULT_ID_NAMESPACE, name)
    # Built without the constructor: it must behave as the constructor's UUID in every way.
    assert made == expected
    assert (str(made), made.version, made.variant) == (str(expected), 5, uuid.RFC_4122)
    assert hash(made) == hash(expected)
    assert pickle.loads(pickle.dumps(made)) == expected
    assert made.is_safe is uuid.SafeUUID.unknown


def test_derive_equals_model_copy_and_leaves_the_event_alone() -> None:
    event = review("the fabric is soft")
    changes = {
        "event_id": result_id(f"echo|{event.event_id}"),
        "causation_id": event.event_id,
        "producer": Producer(name="echo", version="1"),
    }
    derived = event.derive(**changes)
    copied = event.model_copy(update=changes)
    assert derived == copied
    assert derived.to_json() == copied.to_json()
    assert derived.model_fields_set == copied.model_fields_set
    assert (derived.event_id, derived.payload) == (changes["event_id"], event.payload)
    assert event.causation_id is None
    with pytest.raises(ValidationError, match="frozen"):
        derived.tenant_id = "other"  # type: ignore[misc]


def test_derive_refuses_fields_the_event_does_not_have() -> None:
    with pytest.raises(ValueError, match=r"no field\(s\) \['lineage'\]"):
        review().derive(lineage=None)


def _scored(tenant: str, prompt_version: str | None) -> ReviewScored:
    return ReviewScored(
        tenant_id=tenant,
        lineage=Lineage(model_id="m", model_revision="r1", prompt_version=prompt_version),
        payload={
            "review_id": "r",
            "product_id": "p",
            "label": "positive",
            "score": 0.9,
            "confidence": 0.8,
        },
    )


def test_to_json_is_model_dump_json_in_utf8() -> None:
    # Chinese text, an emoji, escapes, a nested lineage, enums and floats: the bytes published
    # are exactly what pydantic's `model_dump_json` writes.
    for event in (
        review('面料很舒服，颜色和图片一样 👍 "quoted"\n'),
        _scored("acme", None),
        _scored("other", "p2"),
    ):
        assert event.to_json() == event.model_dump_json(by_alias=True).encode("utf-8")
        assert type(event).model_validate_json(event.to_json()) == event


def test_encoded_headers_equal_the_event_headers_for_every_event_of_a_batch() -> None:
    encode = EncodedHeaders()
    events = [
        review(tenant="acme"),
        review(tenant="acme"),
        review(tenant="other"),
        _scored("acme", None),
        _scored("acme", "p2"),
        _scored("acme", "p2"),
    ]
    for event in events:
        expected = [(name, value.encode()) for name, value in event_headers(event).items()]
        headers = encode(event)
        assert headers == expected
        headers.append(("mutated", b"x"))  # a caller's list is its own, never the cache's
    assert encode(events[0]) == [
        (name, value.encode()) for name, value in event_headers(events[0]).items()
    ]
