"""One batch, start to finish: decode each record, run the handler, isolate failing records.

Kafka-free on purpose, so the rules that decide what is published and what is dead-lettered are
tested without a broker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from shopstream.events import Event
from shopstream.runtime.codec import DecodeFailure, EventDecoder, FailureReason
from shopstream.runtime.records import Record

EventT = TypeVar("EventT", bound=Event)


class FatalServiceError(RuntimeError):
    """An error no retry or dead letter can fix (GPU gone, model corrupt): stop the process
    without committing, so the batch is redelivered to a healthy replica."""


@dataclass(slots=True)
class Publication:
    """Read-only by convention, like `Record`: a frozen dataclass sets each field through
    `object.__setattr__`, and every published result is one of these."""

    topic: str
    event: Event | None
    """None publishes a tombstone for `key` (a compacted topic then forgets the key)."""
    key: bytes | None = None
    """Overrides `event.message_key()`; dead letters keep the original record's key."""

    @classmethod
    def tombstone(cls, topic: str, key: str) -> Publication:
        return cls(topic, None, key.encode("utf-8"))

    def key_bytes(self) -> bytes:
        if self.key is not None:
            return self.key
        if self.event is None:
            raise ValueError("a tombstone needs an explicit key")
        return self.event.message_key().encode("utf-8")


BatchHandler = Callable[[Sequence[EventT]], Awaitable[Sequence[Publication]]]


@dataclass
class BatchOutcome(Generic[EventT]):
    events: list[EventT] = field(default_factory=list)
    tombstones: int = 0
    publications: list[Publication] = field(default_factory=list)
    failures: list[tuple[Record, DecodeFailure]] = field(default_factory=list)


async def process_batch(
    records: Sequence[Record],
    decoder: EventDecoder[EventT],
    handler: BatchHandler[EventT],
) -> BatchOutcome[EventT]:
    outcome: BatchOutcome[EventT] = BatchOutcome()
    decoded: list[tuple[Record, EventT]] = []
    for record in records:
        if record.tombstone:
            outcome.tombstones += 1
            continue
        result = decoder.decode(record)
        if isinstance(result, DecodeFailure):
            outcome.failures.append((record, result))
        else:
            decoded.append((record, result))
    outcome.events = [event for _, event in decoded]
    if decoded:
        await _handle_bisecting(decoded, handler, outcome)
    return outcome


async def _handle_bisecting(
    pairs: list[tuple[Record, EventT]],
    handler: BatchHandler[EventT],
    outcome: BatchOutcome[EventT],
) -> None:
    # A batch that fails is split in halves until the records that really fail stand alone:
    # only those are dead-lettered, their batch-mates still get results.
    try:
        publications = await handler([event for _, event in pairs])
    except FatalServiceError:
        raise
    except Exception as error:  # noqa: BLE001 - any model or handler error is isolated per record
        if len(pairs) == 1:
            failure = DecodeFailure(
                FailureReason.PROCESSING_ERROR, type(error).__name__, str(error)[:4_000]
            )
            outcome.failures.append((pairs[0][0], failure))
            return
        middle = len(pairs) // 2
        await _handle_bisecting(pairs[:middle], handler, outcome)
        await _handle_bisecting(pairs[middle:], handler, outcome)
        return
    outcome.publications.extend(publications)
