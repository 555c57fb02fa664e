"""Restart recovery by replay: the activity topic is the changelog of the recommender's state.

Before the consumer group starts, every partition of the activity topic is replayed from its
beginning up to the group's committed offset (outside the group), through the same
`Ranker.record` the handler uses (so the tenants' blends learn their weights again). The group
then resumes exactly at the committed offsets, so each event is applied once. The topic's
retention (7 days by default) bounds what is recovered: older evidence would have decayed away
anyway (see the half-lives in the settings).

After a rebalance, `ActivityCatchUp` does the same for each newly owned partition, from where
this replica's state last saw it up to the group's committed offset: the shoppers another
replica served meanwhile arrive with their recent history. The runtime holds back the next
batch until the catch-up is done, and redelivered events are recognised by their ids.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from pydantic import TypeAdapter, ValidationError

from shopstream.events import ActivityRecorded
from shopstream.runtime import tables
from shopstream.runtime.partitions import PartitionTracker
from shopstream.settings import KafkaSettings
from shopstream_recommender.handlers import interaction_of, latest_event_time
from shopstream_recommender.ranking import Ranker

logger = logging.getLogger("shopstream.recommender")
activity_adapter: TypeAdapter[ActivityRecorded] = TypeAdapter(ActivityRecorded)


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
    ends = await tables.end_offsets(kafka, [topic])
    committed = await tables.committed_offsets(
        kafka, group_id, sorted(ends), client_id="shopstream-recommender-replay"
    )
    return {
        tp: committed.get(tp, end if missing_means_end else 0) for tp, end in sorted(ends.items())
    }


async def replay_activity(
    kafka: KafkaSettings,
    topic: str,
    group_id: str,
    ranker: Ranker,
    *,
    missing_means_end: bool = False,
    max_seconds: float = 600.0,
) -> ReplayReport:
    started = time.perf_counter()
    targets = await replay_targets(kafka, topic, group_id, missing_means_end=missing_means_end)
    ranges = {tp: (0, end) for tp, end in targets.items()}
    report = await replay_ranges(kafka, ranges, ranker, max_seconds=max_seconds)
    return _reported(
        ReplayReport(
            report.records, report.applied, report.unusable, time.perf_counter() - started, targets
        )
    )


async def replay_ranges(
    kafka: KafkaSettings,
    ranges: dict[TopicPartition, tuple[int, int]],
    ranker: Ranker,
    *,
    max_seconds: float = 600.0,
) -> ReplayReport:
    """Apply the activity at offsets [start, end) of each partition through `ranker`."""
    started = time.perf_counter()
    records = applied = unusable = 0
    # Everything replayed was committed before the replay began, so one cap serves it all.
    latest = latest_event_time()
    async for record in tables.replay_ranges(kafka, ranges, max_seconds=max_seconds):
        records += 1
        try:
            event = activity_adapter.validate_json(record.value or b"")
        except ValidationError:
            unusable += 1  # dead-lettered when it was first consumed
            continue
        applied += ranker.record(interaction_of(event, latest))
    replayed = any(end > start for start, end in ranges.values())
    until = {tp: end for tp, (_, end) in ranges.items()} if replayed else {}
    return ReplayReport(records, applied, unusable, time.perf_counter() - started, until)


class ActivityCatchUp:
    """Brings the state up to date with activity partitions a rebalance hands this replica."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        group_id: str,
        ranker: Ranker,
        *,
        max_seconds: float = 120.0,
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._group_id = group_id
        self._ranker = ranker
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
        committed = await tables.committed_offsets(
            self._kafka, self._group_id, mine, client_id="shopstream-recommender-catch-up"
        )
        ranges = {tp: (known[tp], committed[tp]) for tp in mine if committed.get(tp, 0) > known[tp]}
        if not ranges:
            return
        report = await replay_ranges(
            self._kafka, ranges, self._ranker, max_seconds=self._max_seconds
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
