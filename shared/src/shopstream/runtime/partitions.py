"""Which input partitions a replica owns, how far it got in each, and who must hear of changes.

Services whose state is partitioned like their input (the recommender's per-shopper history,
the sentiment service's per-product insights) must catch up when a rebalance hands them a
partition another replica worked on. They register a `PartitionListener`; the tracker calls it
on every assignment, and the runtime holds back the next batch until every listener is done, so
no record of a new partition is handled before its state has caught up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Protocol

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from prometheus_client import Counter, Gauge, Histogram

from shopstream.runtime.metrics import SECONDS_BUCKETS, ServiceMetrics
from shopstream.runtime.records import Record

logger = logging.getLogger("shopstream.partitions")


class PartitionListener(Protocol):
    async def on_assigned(
        self, assigned: frozenset[TopicPartition], tracker: PartitionTracker
    ) -> None:
        """Called with the replica's whole new assignment, before any of it is handled."""
        ...


class PartitionTracker(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, metrics: ServiceMetrics) -> None:
        self.assigned: frozenset[TopicPartition] = frozenset()
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
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            if record.offset >= self.processed.get(partition, 0):
                self.processed[partition] = record.offset + 1

    async def settled(self) -> None:
        """Wait until the listeners have caught up with the current assignment."""
        await self._settled.wait()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Revocation always precedes the next assignment: hold batches from here on.
        self._settled.clear()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._settled.clear()
        started = time.perf_counter()
        self.assigned = frozenset(assigned)
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
