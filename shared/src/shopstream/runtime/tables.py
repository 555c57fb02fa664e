"""Reading topics outside any consumer group: tables, replays, catch-ups and tails.

Every reader here assigns the partitions itself, so each replica sees every partition it asks
for, whatever the group gave it. One job each:

- `TopicFollower`: compacted topics read from the beginning, then followed, like global tables
  (the catalogue, a knowledge base).
- `replay_ranges`: the records at offsets [start, end) of some partitions, to rebuild state from
  a changelog at start-up or catch up a partition a rebalance hands over (up to the group's
  `committed_offsets`).
- `TopicTail` and `read_to_end`: a topic read to the end offsets found on entry, in steps or once.
- `TopicReader` and `read_topic`: a topic polled from its beginning or from now on (tools, demos).

"Read to the end" always means the position reached the end offset, not that a record at
`end - 1` was seen: compaction and transaction markers leave gaps in the offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, LeaderNotAvailableError, NotLeaderForPartitionError
from aiokafka.structs import OffsetAndMetadata

from shopstream.runtime.security import aiokafka_options
from shopstream.settings import KafkaSettings

logger = logging.getLogger("shopstream.tables")

ApplyRecords = Callable[[Sequence[ConsumerRecord[bytes, bytes]]], Awaitable[None]]
LEADER_WAIT_SECONDS = 30.0
"""How long a reader waits for the partition leaders of a topic created a moment ago."""
COORDINATOR_WAIT_SECONDS = 30.0
T = TypeVar("T")


def _consumer(
    kafka: KafkaSettings, *, name: str | None = None, read_committed: bool = False
) -> AIOKafkaConsumer:
    client_id = {"client_id": f"{kafka.client_id or 'shopstream'}-{name}"} if name else {}
    return AIOKafkaConsumer(
        **aiokafka_options(kafka),
        **client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed" if read_committed else "read_uncommitted",
    )


async def while_leaderless(
    call: Callable[[], Awaitable[T]], *, limit_seconds: float | None = None
) -> T:
    """`call`, tried again while a partition has no leader, for up to `limit_seconds`
    (`LEADER_WAIT_SECONDS` when not given).

    A topic created a moment ago answers NotLeaderForPartition or LeaderNotAvailable until its
    leaders are elected; a table follower that met it on start in a CI run never held a product.
    """
    deadline = time.monotonic() + (LEADER_WAIT_SECONDS if limit_seconds is None else limit_seconds)
    while True:
        try:
            return await call()
        except (NotLeaderForPartitionError, LeaderNotAvailableError) as error:
            if time.monotonic() >= deadline:
                raise
            logger.info(
                "partition without a leader yet; asking again", extra={"error": repr(error)}
            )
            await asyncio.sleep(0.2)


async def _end_offsets(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    ends: dict[TopicPartition, int] = await while_leaderless(
        lambda: consumer.end_offsets(list(partitions))
    )
    return ends


async def _seek_to_start(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], *, from_beginning: bool
) -> None:
    # Explicit offsets rather than seek_to_beginning/seek_to_end: those reset in the background
    # and give up quietly when the leader is missing, leaving a reader that never reads.
    if from_beginning:
        starts: dict[TopicPartition, int] = await while_leaderless(
            lambda: consumer.beginning_offsets(list(partitions))
        )
    else:
        starts = await _end_offsets(consumer, partitions)
    for tp, offset in starts.items():
        consumer.seek(tp, offset)


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
    consumer = _consumer(settings)
    await consumer.start()
    try:
        return len(await topic_partitions(consumer, topic))
    finally:
        await consumer.stop()


async def end_offsets(settings: KafkaSettings, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """The offset after the last record of every partition of `topics`, as of now."""
    consumer = _consumer(settings)
    await consumer.start()
    try:
        partitions = [tp for topic in topics for tp in await topic_partitions(consumer, topic)]
        return await _end_offsets(consumer, partitions)
    finally:
        await consumer.stop()


async def committed_offsets(
    kafka: KafkaSettings, group_id: str, partitions: Sequence[TopicPartition], *, client_id: str
) -> dict[TopicPartition, int]:
    """The group's committed offset of each of `partitions` that has one."""
    admin = AIOKafkaAdminClient(**aiokafka_options(kafka), client_id=client_id)
    await admin.start()
    try:
        # A fresh cluster creates its offsets topic on the first coordinator lookup and answers
        # "coordinator not available" meanwhile: retry retriable errors for a while.
        deadline = time.monotonic() + COORDINATOR_WAIT_SECONDS
        while True:
            try:
                committed: dict[
                    TopicPartition, OffsetAndMetadata
                ] = await admin.list_consumer_group_offsets(group_id, partitions=list(partitions))
            except KafkaError as error:
                if not error.retriable or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
            else:
                break
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}


async def _read_ranges(
    consumer: AIOKafkaConsumer,
    ranges: Mapping[TopicPartition, tuple[int, int]],
    *,
    max_seconds: float,
    max_records: int,
    what: str,
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """The records at offsets [start, end) of each range, on a started consumer."""
    pending = {tp for tp, (start, end) in ranges.items() if end > start}
    if not pending:
        return
    consumer.assign(list(pending))
    for tp in pending:
        consumer.seek(tp, ranges[tp][0])
    deadline = time.monotonic() + max_seconds
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} took over {max_seconds} s")
        batches = await consumer.getmany(*pending, timeout_ms=500, max_records=max_records)
        for tp, records in batches.items():
            end = ranges[tp][1]
            for record in records:
                if record.offset >= end:
                    break
                yield record
        for tp in list(pending):
            if await consumer.position(tp) >= ranges[tp][1]:
                pending.discard(tp)


async def replay_ranges(
    kafka: KafkaSettings,
    ranges: Mapping[TopicPartition, tuple[int, int]],
    *,
    max_seconds: float = 600.0,
    max_records: int = 5_000,
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Yield the records at offsets [start, end) of each partition, in offset order per
    partition; `TimeoutError` when that takes over `max_seconds`."""
    if not any(end > start for start, end in ranges.values()):
        return
    consumer = _consumer(kafka)
    await consumer.start()
    try:
        what = f"replaying {sorted(map(str, ranges))}"
        async for record in _read_ranges(
            consumer, ranges, max_seconds=max_seconds, max_records=max_records, what=what
        ):
            yield record
    finally:
        await consumer.stop()


class TopicTail:
    """A topic read like a table, in steps: each `catch_up` yields (partition, key, value) of
    the records added since the previous step, up to the end offsets found when it starts.

    For state restored at start-up and refreshed later (after a rebalance) without reading the
    whole topic again.
    """

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.positions: dict[int, int] = {}
        """Per partition, the offset the next step starts from."""

    async def catch_up(
        self, max_seconds: float = 300.0
    ) -> AsyncIterator[tuple[int, bytes | None, bytes | None]]:
        consumer = _consumer(self.settings)
        await consumer.start()
        try:
            assignment = await topic_partitions(consumer, self.topic)
            ends = await _end_offsets(consumer, assignment)
            ranges = {tp: (self.positions.get(tp.partition, 0), ends[tp]) for tp in assignment}
            async for record in _read_ranges(
                consumer,
                ranges,
                max_seconds=max_seconds,
                max_records=1_000,
                what=f"reading {self.topic!r} to its end",
            ):
                yield record.partition, record.key, record.value
            self.positions.update({tp.partition: ends[tp] for tp in assignment})
        finally:
            await consumer.stop()


async def read_to_end(
    settings: KafkaSettings, topic: str, *, max_seconds: float = 300.0
) -> AsyncIterator[tuple[bytes | None, bytes | None]]:
    """Yield (key, value) of every record up to the end offsets found on entry.

    A compacted topic read like a table: a tombstone yields a value of None. Raises
    `LookupError` when the topic does not exist and `TimeoutError` when the end is not reached
    within `max_seconds`.
    """
    async for _partition, key, value in TopicTail(settings, topic).catch_up(max_seconds):
        yield key, value


class TopicReader:
    """Every partition of a topic polled from its beginning, or from its end as of `start()`
    (what is published from then on)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        *,
        from_beginning: bool = True,
        read_committed: bool = False,
    ) -> None:
        self._consumer = _consumer(kafka, read_committed=read_committed)
        self._topic = topic
        self._from_beginning = from_beginning

    async def start(self) -> None:
        """Raises `LookupError` when the topic does not exist."""
        await self._consumer.start()
        try:
            assignment = await topic_partitions(self._consumer, self._topic)
            self._consumer.assign(assignment)
            await _seek_to_start(self._consumer, assignment, from_beginning=self._from_beginning)
        except BaseException:
            await self._consumer.stop()
            raise

    async def poll(
        self, *, timeout_ms: int = 200, max_records: int = 1_000
    ) -> list[ConsumerRecord[bytes, bytes]]:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return [record for records in batches.values() for record in records]

    async def stop(self) -> None:
        await self._consumer.stop()


async def read_topic(
    settings: KafkaSettings,
    topic: str,
    *,
    from_beginning: bool = True,
    idle_timeout: float | None = 5.0,
    deadline: float | None = None,
    read_committed: bool = False,
) -> AsyncIterator[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
    """Yield (key, value, headers) of every record; a tombstone's value is b"".

    Stops after `idle_timeout` seconds without a record, or at the monotonic `deadline`.
    """
    reader = TopicReader(
        settings, topic, from_beginning=from_beginning, read_committed=read_committed
    )
    await reader.start()
    try:
        last_record = time.monotonic()
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            if idle_timeout is not None and now - last_record >= idle_timeout:
                return
            records = await reader.poll()
            if records:
                last_record = time.monotonic()
            for record in records:
                yield record.key, record.value or b"", list(record.headers or ())
    finally:
        await reader.stop()


class TopicFollower:
    """Reads `topics` from the beginning into `apply`, then keeps following them.

    Reference data that every replica needs in full (the catalogue, a knowledge base) is read
    from the beginning and then followed for as long as the service runs. Two waits make the
    table usable: `wait_caught_up` (start-up: the end offsets seen on start are read) and `sync`
    (read-your-writes: the end offsets as of now are read, e.g. before answering a request that
    names an entity someone just published).

    Records are handed to `apply` in offset order per partition. `apply` must cope with a record
    it cannot use (log and count it): every replica reads every record, so dead-lettering would
    send the same record once per replica.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: Sequence[str],
        apply: ApplyRecords,
        *,
        name: str,
        poll_timeout_ms: int = 200,
        max_records: int = 1_000,
    ) -> None:
        self._kafka = kafka
        self._topics = list(topics)
        self._apply = apply
        self._name = name
        self._poll_timeout_ms = poll_timeout_ms
        self._max_records = max_records
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._start_ends: dict[TopicPartition, int] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()

    @property
    def topics(self) -> list[str]:
        return list(self._topics)

    async def start(self) -> None:
        """Assign every partition of every topic from the beginning; follow in the background.

        Raises `LookupError` when a topic does not exist. A partition without a leader yet (a
        topic created a moment ago) is asked again for up to `LEADER_WAIT_SECONDS`.
        """
        consumer = _consumer(self._kafka, name=self._name)
        await consumer.start()
        try:
            assignment: list[TopicPartition] = []
            for topic in self._topics:
                assignment += await topic_partitions(consumer, topic)
            consumer.assign(assignment)
            self._start_ends = await _end_offsets(consumer, assignment)
            await _seek_to_start(consumer, assignment, from_beginning=True)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._follow(consumer), name=f"{self._name}-follower")

    async def wait_caught_up(self, limit_seconds: float) -> float:
        """Wait until the end offsets seen on start are applied; return the seconds it took."""
        started = time.perf_counter()
        if not await self._reach(self._start_ends, limit_seconds):
            raise TimeoutError(f"{self._topics} not read to their end within {limit_seconds:.0f} s")
        return time.perf_counter() - started

    async def sync(self, limit_seconds: float) -> bool:
        """Wait until everything published before this call is applied; False on time-out."""
        consumer = self._consumer
        if consumer is None:
            return False
        ends = await _end_offsets(consumer, list(self._start_ends))
        return await self._reach(ends, limit_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _reach(self, ends: dict[TopicPartition, int], limit_seconds: float) -> bool:
        def reached() -> bool:
            return all(self._positions.get(tp, 0) >= end for tp, end in ends.items())

        async with self._progress:
            try:
                await asyncio.wait_for(self._progress.wait_for(reached), limit_seconds)
            except TimeoutError:
                return False
        return True

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batches = await consumer.getmany(
                    timeout_ms=self._poll_timeout_ms, max_records=self._max_records
                )
                records = [record for part in batches.values() for record in part]
                if records:
                    try:
                        await self._apply(records)
                    except Exception:
                        # Read the batch again on the next try rather than lose it.
                        for partition, part in batches.items():
                            consumer.seek(partition, part[0].offset)
                        raise
                positions = {tp: await consumer.position(tp) for tp in self._start_ends}
                async with self._progress:
                    self._positions = positions
                    self._progress.notify_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A slightly stale table beats a replica that stops following.
                logger.exception("following %s failed; retrying in 1 s", self._topics)
                await asyncio.sleep(1.0)
