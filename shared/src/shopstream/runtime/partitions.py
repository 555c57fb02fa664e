"""Which input partitions a replica owns, how far it got in each, and who must hear of changes.

Services whose state is partitioned like their input (the recommender's per-shopper history,
the sentiment service's per-product insights) must catch up when a rebalance hands them a
partition another replica worked on. They register a `PartitionListener`; the tracker calls it
on every assignment, and the runtime holds back the next batch until every listener is done, so
no record of a new partition is handled before its state has caught up.

Giving partitions up: when a rebalance revokes partitions, the batch in flight is let finish
(up to `drain_seconds`) and the offsets processed so far are committed for the revoked
partitions before the group moves on. Without that, the batch's commit would come after the
rebalance, be refused, and the next owner would process the batch again: every scale-out or
scale-in would repeat the batches in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from prometheus_client import Counter, Gauge, Histogram

from shopstream.runtime.metrics import SECONDS_BUCKETS, ServiceMetrics
from shopstream.runtime.records import Record, next_offsets

logger = logging.getLogger("shopstream.partitions")


class PartitionListener(Protocol):
    async def on_assigned(
        self, assigned: frozenset[TopicPartition], tracker: PartitionTracker
    ) -> None:
        """Called with the replica's whole new assignment, before any of it is handled."""
        ...


CommitOffsets = Callable[[dict[TopicPartition, int]], Awaitable[None]]
"""Commits the given next offsets for the consumer group (at-least-once delivery)."""


class PartitionTracker(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, metrics: ServiceMetrics, *, drain_seconds: float = 30.0) -> None:
        self.drain_seconds = drain_seconds
        """Longest a revocation waits for the batch in flight before giving partitions up."""
        self.commit: CommitOffsets | None = None
        """Set by the runtime when it commits offsets itself (at-least-once); None when the
        offsets are committed with the batch's transaction (exactly-once)."""
        self._idle = asyncio.Event()
        self._idle.set()
        self._processed_since_assignment: dict[TopicPartition, int] = {}
        """Like `processed`, but only for batches handled under the current assignment: the
        offsets a revocation may commit. An older entry (a partition owned, lost and owned
        again) would move the group's offset backwards."""
        self.assigned: frozenset[TopicPartition] = frozenset()
        self._assigned_once = False
        self.processed: dict[TopicPartition, int] = {}
        """Per partition, the offset after the last record whose batch was published: what
        this replica's state has seen (it may have owned the partition before)."""
        self._listeners: list[PartitionListener] = []
        self._settled = asyncio.Event()
        self._settled.set()
        registry = metrics.registry
        prefix = metrics.prefix
        self._rebalances = Counter(
            f"{prefix}_rebalances_total",
            "Partition assignments this replica received (start-up included).",
            registry=registry,
        )
        self._owned = Gauge(
            f"{prefix}_assigned_partitions",
            "Input partitions this replica owns now.",
            registry=registry,
        )
        self._catch_up_seconds = Histogram(
            f"{prefix}_rebalance_catch_up_seconds",
            "Time the service's state took to catch up with a new assignment.",
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )

    def add_listener(self, listener: PartitionListener) -> None:
        self._listeners.append(listener)

    def note_processed(self, records: Iterable[Record]) -> None:
        # Per partition, not per record: this runs on every batch of the bus path.
        for (topic, partition), offset in next_offsets(records).items():
            key = TopicPartition(topic, partition)
            if offset > self.processed.get(key, 0):
                self.processed[key] = offset
            if offset > self._processed_since_assignment.get(key, 0):
                self._processed_since_assignment[key] = offset

    def still_ours(self, records: list[Record]) -> list[Record]:
        """The records of a batch that this replica may still handle after a rebalance.

        aiokafka hands the application a fetched batch that a rebalance can overtake before
        the batch starts (the revocation waits only for a batch already started). Afterwards
        its partitions either belong to another replica, which fetches them again from the
        group's offset, or came back to this one, whose fetcher starts again from there too:
        handling the stale records would publish them twice. Only records of partitions owned
        now and past what this replica already published are kept. Until the first assignment
        (FastStream's in-memory test broker assigns nothing) every record is kept.
        """
        if not self._assigned_once:
            return records
        floors: dict[tuple[str, int], int | None] = {}
        kept: list[Record] = []
        for record in records:
            slot = (record.topic, record.partition)
            if slot in floors:
                floor = floors[slot]
            else:
                partition = TopicPartition(record.topic, record.partition)
                owned = partition in self.assigned
                floor = floors[slot] = self.processed.get(partition, 0) if owned else None
            if floor is not None and record.offset >= floor:
                kept.append(record)
        if len(kept) < len(records):
            logger.info(
                "skipped records a rebalance overtook",
                extra={"skipped": len(records) - len(kept), "kept": len(kept)},
            )
        return kept

    async def settled(self) -> None:
        """Wait until the listeners have caught up with the current assignment."""
        await self._settled.wait()

    def batch_started(self) -> None:
        """A batch is being handled (called after `settled`, so a revocation never waits for a
        batch that itself waits for the next assignment)."""
        self._idle.clear()

    def batch_finished(self) -> None:
        self._idle.set()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Revocation always precedes the next assignment: hold batches from here on.
        self._settled.clear()
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._idle.wait(), self.drain_seconds)
        except TimeoutError:
            logger.warning(
                "batch in flight not finished before giving partitions up; it may be redone",
                extra={"waited_seconds": self.drain_seconds},
            )
            return
        offsets = {
            tp: self._processed_since_assignment[tp]
            for tp in revoked
            if tp in self._processed_since_assignment
        }
        if self.commit is None or not offsets:
            return
        try:
            await self.commit(offsets)
        except Exception:
            # The group moves on either way; the next owner redoes what was not committed.
            logger.exception("committing revoked partitions failed; their last batch may be redone")
            return
        logger.info(
            "committed revoked partitions",
            extra={
                "partitions": len(offsets),
                "waited_seconds": round(time.perf_counter() - started, 3),
            },
        )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._settled.clear()
        self._processed_since_assignment.clear()
        started = time.perf_counter()
        self.assigned = frozenset(assigned)
        self._assigned_once = True
        self._rebalances.inc()
        self._owned.set(len(assigned))
        try:
            for listener in self._listeners:
                await listener.on_assigned(self.assigned, self)
        except Exception:
            # A failed catch-up leaves the state staler, never wrong about ownership; the
            # service goes on rather than stalling the whole group's rebalance.
            logger.exception("a partition listener failed; its state may be behind")
        finally:
            seconds = time.perf_counter() - started
            self._catch_up_seconds.observe(seconds)
            self._settled.set()
        logger.info(
            "partitions assigned",
            extra={"partitions": len(assigned), "catch_up_seconds": round(seconds, 3)},
        )
