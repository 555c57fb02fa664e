"""Follow compacted topics like a global table: every partition, outside any consumer group.

Reference data that every replica needs in full (the catalogue, a knowledge base) is read from
the beginning and then followed for as long as the service runs. Two waits make the table
usable: `wait_caught_up` (start-up: the end offsets seen on start are read) and `sync`
(read-your-writes: the end offsets as of now are read, e.g. before answering a request that
names an entity someone just published).

Records are handed to `apply` in offset order per partition. `apply` must cope with a record it
cannot use (log and count it): every replica reads every record, so dead-lettering would send
the same record once per replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shopstream.kafka_io import topic_partitions
from shopstream.runtime.security import aiokafka_options
from shopstream.settings import KafkaSettings

logger = logging.getLogger("shopstream.follower")

ApplyRecords = Callable[[Sequence[ConsumerRecord[bytes, bytes]]], Awaitable[None]]


class TopicFollower:
    """Reads `topics` from the beginning into `apply`, then keeps following them."""

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

        Raises `LookupError` when a topic does not exist.
        """
        consumer = AIOKafkaConsumer(
            **aiokafka_options(self._kafka),
            client_id=f"{self._kafka.client_id or 'shopstream'}-{self._name}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            assignment: list[TopicPartition] = []
            for topic in self._topics:
                assignment += await topic_partitions(consumer, topic)
            consumer.assign(assignment)
            self._start_ends = await consumer.end_offsets(assignment)
            await consumer.seek_to_beginning(*assignment)
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
        ends = await consumer.end_offsets(list(self._start_ends))
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
                # Positions, not the last offset seen: compaction and transaction markers leave
                # gaps, so "read to the end" means the position reached the end offset.
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
