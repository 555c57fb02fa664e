"""Plain aiokafka producers and readers for tools (CLI, demo, tests); services use the runtime."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shopstream.events import Event
from shopstream.runtime.codec import event_headers
from shopstream.runtime.security import aiokafka_options
from shopstream.settings import KafkaSettings


def encode_headers(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(name, value.encode("utf-8")) for name, value in headers.items()]


async def publish_events(
    settings: KafkaSettings, topic: str, events: Sequence[Event], *, linger_ms: int = 5
) -> int:
    """Publish events keyed by their entity and wait for every acknowledgement."""
    producer = AIOKafkaProducer(
        **aiokafka_options(settings), linger_ms=linger_ms, enable_idempotence=True
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                event.to_json(),
                key=event.message_key().encode("utf-8"),
                headers=encode_headers(event_headers(event)),
            )
            for event in events
        ]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


async def publish_paced(
    settings: KafkaSettings, topic: str, events: Sequence[Event], rate: float
) -> None:
    """Publish at about `rate` events/s, as an upstream system would, and wait for every
    acknowledgement. One producer for the whole stream, so a broker outage in the middle is
    ridden out by the producer's own retries."""
    producer = AIOKafkaProducer(**aiokafka_options(settings), enable_idempotence=True)
    await producer.start()
    try:
        began = time.perf_counter()
        pending = []
        for index, event in enumerate(events):
            delay = began + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(
                await producer.send(
                    topic,
                    event.to_json(),
                    key=event.message_key().encode("utf-8"),
                    headers=encode_headers(event_headers(event)),
                )
            )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def topic_partitions(
    consumer: AIOKafkaConsumer, topic: str, *, wait_seconds: float = 5.0
) -> list[TopicPartition]:
    """Every partition of `topic`, for a consumer that assigns them itself (no group).

    A topic created a moment ago can be missing from the metadata for a little while: it is
    looked up again for up to `wait_seconds` before `LookupError` says it does not exist. Under
    ACLs the broker leaves topics a principal may not `Describe` out of the metadata, so the
    message names that cause too."""
    deadline = time.monotonic() + wait_seconds
    while True:
        # aiokafka's public `topics()` discards the metadata it fetched; keep it instead.
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(topic)
        if partitions:
            return [TopicPartition(topic, partition) for partition in sorted(partitions)]
        if time.monotonic() > deadline:
            raise LookupError(
                f"topic {topic!r} does not exist, or this principal is not allowed to read it"
                " (check its ACLs: `shopstream acls show SERVICE`)"
            )
        await asyncio.sleep(0.2)


async def partition_count(settings: KafkaSettings, topic: str) -> int:
    consumer = AIOKafkaConsumer(**aiokafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        return len(await topic_partitions(consumer, topic))
    finally:
        await consumer.stop()


async def end_offsets(settings: KafkaSettings, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """The offset after the last record of every partition of `topics`, as of now."""
    consumer = AIOKafkaConsumer(**aiokafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [tp for topic in topics for tp in await topic_partitions(consumer, topic)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return ends
    finally:
        await consumer.stop()


async def read_topic(
    settings: KafkaSettings,
    topic: str,
    *,
    from_beginning: bool = True,
    idle_timeout: float | None = 5.0,
    deadline: float | None = None,
    read_committed: bool = False,
) -> AsyncIterator[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
    """Yield (key, value, headers) of every record, outside any consumer group.

    Stops after `idle_timeout` seconds without a record, or at the monotonic `deadline`.
    """
    consumer = AIOKafkaConsumer(
        **aiokafka_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        isolation_level="read_committed" if read_committed else "read_uncommitted",
    )
    await consumer.start()
    try:
        assignment = await topic_partitions(consumer, topic)
        consumer.assign(assignment)
        if from_beginning:
            await consumer.seek_to_beginning(*assignment)
        else:
            await consumer.seek_to_end(*assignment)
        last_record = time.monotonic()
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            if idle_timeout is not None and now - last_record >= idle_timeout:
                return
            batches = await consumer.getmany(timeout_ms=200, max_records=1_000)
            for records in batches.values():
                last_record = time.monotonic()
                for record in records:
                    yield record.key, record.value or b"", list(record.headers or ())
    finally:
        await consumer.stop()


async def read_to_end(
    settings: KafkaSettings, topic: str, *, max_seconds: float = 300.0
) -> AsyncIterator[tuple[bytes | None, bytes | None]]:
    """Yield (key, value) of every record up to the end offsets found on entry.

    Reads outside any consumer group, so every replica sees every partition: a compacted topic
    read like a table. A tombstone yields a value of None. Raises `LookupError` when the topic
    does not exist and `TimeoutError` when the end is not reached within `max_seconds`.
    """
    async for _partition, key, value in TopicTail(settings, topic).catch_up(max_seconds):
        yield key, value


class TopicTail:
    """A topic read like a table, in steps: each `catch_up` yields (partition, key, value) of
    the records added since the previous step, up to the end offsets found when it starts.

    For state restored at start-up and refreshed later (after a rebalance) without reading the
    whole topic again. Outside any consumer group, like `read_to_end`.
    """

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.positions: dict[int, int] = {}
        """Per partition, the offset the next step starts from."""

    async def catch_up(
        self, max_seconds: float = 300.0
    ) -> AsyncIterator[tuple[int, bytes | None, bytes | None]]:
        consumer = AIOKafkaConsumer(
            **aiokafka_options(self.settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            assignment = await topic_partitions(consumer, self.topic)
            consumer.assign(assignment)
            ends: dict[TopicPartition, int] = await consumer.end_offsets(assignment)
            for tp in assignment:
                consumer.seek(tp, self.positions.get(tp.partition, 0))
            deadline = time.monotonic() + max_seconds
            # Compaction leaves gaps in the offsets, so "done" means the position reached the
            # end, not that a record with offset end - 1 was seen.
            pending = {tp for tp in assignment if ends[tp] > self.positions.get(tp.partition, 0)}
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"reading {self.topic!r} to its end took over {max_seconds} s"
                    )
                batches = await consumer.getmany(*pending, timeout_ms=500, max_records=1_000)
                for tp, records in batches.items():
                    for record in records:
                        if record.offset < ends[tp]:
                            yield tp.partition, record.key, record.value
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
            self.positions.update({tp.partition: ends[tp] for tp in assignment})
        finally:
            await consumer.stop()
