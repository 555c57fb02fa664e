"""Restart recovery by replay: the activity topic is the changelog of the recommender's state.

Before the consumer group starts, every partition of the activity topic is replayed from its
beginning up to the group's committed offset (outside the group), through the same
`RecommenderState.record` the handler uses. The group then resumes exactly at the committed
offsets, so each event is applied once. The topic's retention (7 days by default) bounds what is
recovered: older evidence would have decayed away anyway (see the half-lives in the settings).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from pydantic import TypeAdapter, ValidationError

from shopstream.events import ActivityRecorded
from shopstream.runtime.security import aiokafka_options
from shopstream.settings import KafkaSettings
from shopstream_recommender.catalogue import partitions_of
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
        partitions = await partitions_of(consumer, topic)
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
    pending = {tp for tp, offset in targets.items() if offset > 0}
    records = applied = unusable = 0
    if not pending:
        return _reported(ReplayReport(0, 0, 0, time.perf_counter() - started))
    consumer = AIOKafkaConsumer(
        **aiokafka_options(kafka), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(list(pending))
        await consumer.seek_to_beginning(*pending)
        deadline = time.monotonic() + max_seconds
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"replaying {topic!r} took over {max_seconds} s")
            batches = await consumer.getmany(*pending, timeout_ms=500, max_records=5_000)
            for tp, batch in batches.items():
                for record in batch:
                    if record.offset >= targets[tp]:
                        break
                    records += 1
                    try:
                        event = activity_adapter.validate_json(record.value or b"")
                    except ValidationError:
                        unusable += 1  # dead-lettered when it was first consumed
                        continue
                    applied += state.record(interaction_of(event))
            for tp in list(pending):
                if await consumer.position(tp) >= targets[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return _reported(ReplayReport(records, applied, unusable, time.perf_counter() - started))


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
