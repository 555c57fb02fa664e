"""Restart recovery by replay: the activity topic is the changelog of the recommender's state.

Before the consumer group starts, every partition of the activity topic is replayed from its
beginning up to the group's committed offset (outside the group), through the same
`RecommenderState.record` the handler uses. The group then resumes exactly at the committed
offsets, so each event is applied once. The topic's retention (7 days by default) bounds what is
recovered: older evidence would have decayed away anyway (see the half-lives in the settings).

After a rebalance, `ActivityCatchUp` does the same for each newly owned partition, from where
this replica's state last saw it up to the group's committed offset: the shoppers another
replica served meanwhile arrive with their recent history. The runtime holds back the next
batch until the catch-up is done, and redelivered events are recognised by their ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from pydantic import TypeAdapter, ValidationError

from shopstream.events import ActivityRecorded
from shopstream.kafka_io import topic_partitions
from shopstream.runtime.partitions import PartitionTracker
from shopstream.runtime.security import aiokafka_options
from shopstream.settings import KafkaSettings
from shopstream_recommender.handlers import interaction_of
from shopstream_recommender.state import RecommenderState

logger = logging.getLogger("shopstream.recommender")
activity_adapter: TypeAdapter[ActivityRecorded] = TypeAdapter(ActivityRecorded)
COORDINATOR_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class ReplayReport:
    records: int
    applied: int
    unusable: int
    seconds: float
    until: dict[TopicPartition, int] = field(default_factory=dict)
    """Per partition, the offset up to which the state now holds its activity."""


async def replay_targets(
    kafka: KafkaSettings, topic: str, group_id: str, *, missing_means_end: bool
) -> dict[TopicPartition, int]:
    """Offset up to which each partition is replayed: the group's committed offset; for a
    partition without one, 0 (the group reads it from the start) or, when the group would
    start it at the end (`missing_means_end`), its end offset."""
    admin = AIOKafkaAdminClient(
        **aiokafka_options(kafka), client_id="shopstream-recommender-replay"
    )
    consumer = AIOKafkaConsumer(**aiokafka_options(kafka), enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        committed = await _committed_offsets(admin, group_id, partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        targets: dict[TopicPartition, int] = {}
        for tp in partitions:
            offset = committed[tp].offset if tp in committed else -1
            if offset >= 0:
                targets[tp] = offset
            else:
                targets[tp] = ends[tp] if missing_means_end else 0
        return targets
    finally:
        await consumer.stop()
        await admin.close()


async def _committed_offsets(
    admin: AIOKafkaAdminClient, group_id: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, OffsetAndMetadata]:
    # A fresh cluster creates its offsets topic on the first coordinator lookup and answers
    # "coordinator not available" meanwhile: retry retriable errors for a while.
    deadline = time.monotonic() + COORDINATOR_WAIT_SECONDS
    while True:
        try:
            offsets: dict[
                TopicPartition, OffsetAndMetadata
            ] = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
        except KafkaError as error:
            if not error.retriable or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        else:
            return offsets


async def replay_activity(
    kafka: KafkaSettings,
    topic: str,
    group_id: str,
    state: RecommenderState,
    *,
    missing_means_end: bool = False,
    max_seconds: float = 600.0,
) -> ReplayReport:
    started = time.perf_counter()
    targets = await replay_targets(kafka, topic, group_id, missing_means_end=missing_means_end)
    ranges = {tp: (0, end) for tp, end in targets.items()}
    report = await replay_ranges(kafka, ranges, state, max_seconds=max_seconds)
    return _reported(
        ReplayReport(
            report.records, report.applied, report.unusable, time.perf_counter() - started, targets
        )
    )


async def replay_ranges(
    kafka: KafkaSettings,
    ranges: dict[TopicPartition, tuple[int, int]],
    state: RecommenderState,
    *,
    max_seconds: float = 600.0,
) -> ReplayReport:
    """Apply the activity at offsets [start, end) of each partition to `state`."""
    started = time.perf_counter()
    pending = {tp for tp, (start, end) in ranges.items() if end > start}
    records = applied = unusable = 0
    if not pending:
        return ReplayReport(0, 0, 0, time.perf_counter() - started)
    consumer = AIOKafkaConsumer(
        **aiokafka_options(kafka), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(list(pending))
        for tp in pending:
            consumer.seek(tp, ranges[tp][0])
        deadline = time.monotonic() + max_seconds
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"replaying {sorted(map(str, pending))} took over {max_seconds} s"
                )
            batches = await consumer.getmany(*pending, timeout_ms=500, max_records=5_000)
            for tp, batch in batches.items():
                end = ranges[tp][1]
                for record in batch:
                    if record.offset >= end:
                        break
                    records += 1
                    try:
                        event = activity_adapter.validate_json(record.value or b"")
                    except ValidationError:
                        unusable += 1  # dead-lettered when it was first consumed
                        continue
                    applied += state.record(interaction_of(event))
            for tp in list(pending):
                if await consumer.position(tp) >= ranges[tp][1]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    until = {tp: end for tp, (_, end) in ranges.items()}
    return ReplayReport(records, applied, unusable, time.perf_counter() - started, until)


class ActivityCatchUp:
    """Brings the state up to date with activity partitions a rebalance hands this replica."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        group_id: str,
        state: RecommenderState,
        *,
        max_seconds: float = 120.0,
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._group_id = group_id
        self._state = state
        self._max_seconds = max_seconds
        self.seen: dict[TopicPartition, int] = {}
        """Offset up to which the state holds each partition (start-up replay, catch-ups)."""
        self.last: ReplayReport | None = None

    async def on_assigned(
        self, assigned: frozenset[TopicPartition], tracker: PartitionTracker
    ) -> None:
        mine = [tp for tp in assigned if tp.topic == self._topic]
        if not mine:
            return
        known = {tp: max(self.seen.get(tp, 0), tracker.processed.get(tp, 0)) for tp in mine}
        committed = await _group_offsets(self._kafka, self._group_id, mine)
        ranges = {tp: (known[tp], committed[tp]) for tp in mine if committed.get(tp, 0) > known[tp]}
        if not ranges:
            return
        report = await replay_ranges(
            self._kafka, ranges, self._state, max_seconds=self._max_seconds
        )
        self.seen.update(report.until)
        self.last = report
        logger.info(
            "caught up with newly assigned activity partitions",
            extra={
                "partitions": len(ranges),
                "records": report.records,
                "applied": report.applied,
                "seconds": round(report.seconds, 3),
            },
        )


async def _group_offsets(
    kafka: KafkaSettings, group_id: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(
        **aiokafka_options(kafka), client_id="shopstream-recommender-catch-up"
    )
    await admin.start()
    try:
        committed = await _committed_offsets(admin, group_id, partitions)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}


def _reported(report: ReplayReport) -> ReplayReport:
    logger.info(
        "activity replayed",
        extra={
            "records": report.records,
            "applied": report.applied,
            "unusable": report.unusable,
            "seconds": round(report.seconds, 3),
        },
    )
    return report
