"""Plain aiokafka producers for tools (CLI, demo, tests); services use the runtime.

The readers live in `shopstream.runtime.tables`; the ones tools use are re-exported here so a
tool imports its Kafka helpers from one place.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from shopstream.events import Event
from shopstream.runtime.codec import event_headers
from shopstream.runtime.security import aiokafka_options
from shopstream.runtime.tables import (
    end_offsets,
    partition_count,
    read_to_end,
    read_topic,
    topic_partitions,
)
from shopstream.settings import KafkaSettings


def encode_headers(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(name, value.encode("utf-8")) for name, value in headers.items()]


async def _send(producer: AIOKafkaProducer, topic: str, event: Event) -> asyncio.Future[Any]:
    """Hand `event` to the producer, keyed by its entity; the future of its acknowledgement."""
    future: asyncio.Future[Any] = await producer.send(
        topic,
        event.to_json(),
        key=event.message_key().encode("utf-8"),
        headers=encode_headers(event_headers(event)),
    )
    return future


async def publish_events(
    settings: KafkaSettings, topic: str, events: Sequence[Event], *, linger_ms: int = 5
) -> int:
    """Publish events keyed by their entity and wait for every acknowledgement."""
    async with AIOKafkaProducer(
        **aiokafka_options(settings), linger_ms=linger_ms, enable_idempotence=True
    ) as producer:
        futures = [await _send(producer, topic, event) for event in events]
        await asyncio.gather(*futures)
        return len(futures)


async def pace(began: float, index: int, rate: float) -> None:
    """Wait until the `index`-th message of a stream sent at `rate` per second since `began`
    (a `time.perf_counter()` reading) is due."""
    delay = began + index / rate - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def publish_paced(
    settings: KafkaSettings, topic: str, events: Sequence[Event], rate: float
) -> None:
    """Publish at about `rate` events/s, as an upstream system would, and wait for every
    acknowledgement. One producer for the whole stream, so a broker outage in the middle is
    ridden out by the producer's own retries."""
    async with AIOKafkaProducer(**aiokafka_options(settings), enable_idempotence=True) as producer:
        began = time.perf_counter()
        pending = []
        for index, event in enumerate(events):
            await pace(began, index, rate)
            pending.append(await _send(producer, topic, event))
        await asyncio.gather(*pending)


async def results_of(
    settings: KafkaSettings,
    topic: str,
    causes: Sequence[Event],
    *,
    within: float,
    idle_timeout: float | None = None,
) -> dict[str, dict[str, Any]]:
    """The result documents on `topic` of `causes`, by the cause's event id: read from the
    beginning until every cause has one, `within` seconds pass, or nothing new arrives for
    `idle_timeout` seconds (default: `within`)."""
    wanted = {str(event.event_id) for event in causes}
    found: dict[str, dict[str, Any]] = {}
    async for _key, value, _headers in read_topic(
        settings,
        topic,
        idle_timeout=within if idle_timeout is None else idle_timeout,
        deadline=time.monotonic() + within,
    ):
        document = json.loads(value)
        if document.get("causation_id") in wanted:
            found[document["causation_id"]] = document
        if len(found) == len(wanted):
            break
    return found


__all__ = [
    "encode_headers",
    "end_offsets",
    "pace",
    "partition_count",
    "publish_events",
    "publish_paced",
    "read_to_end",
    "read_topic",
    "results_of",
    "topic_partitions",
]
