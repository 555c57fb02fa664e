"""Giving partitions up in a rebalance: the batch in flight finishes and its revoked partitions
are committed first, so the next owner does not redo it."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from shopstream.runtime.metrics import ServiceMetrics
from shopstream.runtime.partitions import PartitionTracker
from shopstream.runtime.records import Record

pytestmark = pytest.mark.unit

A0, A1 = TopicPartition("in", 0), TopicPartition("in", 1)


def tracker(drain_seconds: float = 5.0) -> tuple[PartitionTracker, list[dict[TopicPartition, int]]]:
    commits: list[dict[TopicPartition, int]] = []

    async def commit(offsets: dict[TopicPartition, int]) -> None:
        commits.append(dict(offsets))

    result = PartitionTracker(
        ServiceMetrics("tracker_test", CollectorRegistry()), drain_seconds=drain_seconds
    )
    result.commit = commit
    return result, commits


def records(partition: int, *offsets: int) -> list[Record]:
    return [Record("in", partition, offset, None, b"{}", ()) for offset in offsets]


async def test_a_revocation_waits_for_the_batch_in_flight_then_commits_its_partitions() -> None:
    partitions, commits = tracker()
    await partitions.on_partitions_assigned({A0, A1})
    partitions.batch_started()
    revoking = asyncio.create_task(partitions.on_partitions_revoked({A0}))
    await asyncio.sleep(0.05)
    assert not revoking.done(), "the revocation must wait for the batch in flight"
    assert commits == []
    partitions.note_processed([*records(0, 7, 8), *records(1, 3)])
    partitions.batch_finished()
    await asyncio.wait_for(revoking, 1.0)
    # Only the revoked partition, at the offset after the last record handled.
    assert commits == [{A0: 9}]


async def test_offsets_from_an_earlier_ownership_are_never_committed() -> None:
    partitions, commits = tracker()
    await partitions.on_partitions_assigned({A0})
    partitions.note_processed(records(0, 40))
    await partitions.on_partitions_revoked({A0})
    assert commits == [{A0: 41}]
    # Owned again later: another replica has moved the group's offset on meanwhile. Revoked
    # again before this replica handled anything, it must not commit its old offset 41.
    await partitions.on_partitions_assigned({A0})
    await partitions.on_partitions_revoked({A0})
    assert commits == [{A0: 41}]
    assert partitions.processed[A0] == 41, "the state's own progress is still remembered"


async def test_a_batch_slower_than_the_drain_time_is_left_to_the_next_owner() -> None:
    partitions, commits = tracker(drain_seconds=0.05)
    await partitions.on_partitions_assigned({A0})
    partitions.note_processed(records(0, 1))
    partitions.batch_started()
    await asyncio.wait_for(partitions.on_partitions_revoked({A0}), 1.0)
    assert commits == [], "a revocation that gave up waiting commits nothing"


async def test_without_a_commit_function_a_revocation_only_waits() -> None:
    partitions, _ = tracker()
    partitions.commit = None  # exactly-once: offsets go with each batch's transaction
    await partitions.on_partitions_assigned({A0})
    partitions.note_processed(records(0, 1))
    await asyncio.wait_for(partitions.on_partitions_revoked({A0}), 1.0)


async def test_a_batch_a_rebalance_overtook_keeps_only_what_is_still_ours() -> None:
    partitions, _ = tracker()
    fetched = records(0, 10, 11) + records(1, 20, 21)
    # Before any assignment (FastStream's in-memory broker) nothing is filtered.
    assert partitions.still_ours(fetched) == fetched
    await partitions.on_partitions_assigned({A0, A1})
    partitions.note_processed(records(0, 5, 6))
    assert partitions.still_ours(fetched) == fetched
    # The batch was fetched, then a rebalance gave partition 1 to another replica and gave
    # partition 0 back, whose fetcher starts again from the group's offset.
    await partitions.on_partitions_revoked({A0, A1})
    await partitions.on_partitions_assigned({A0})
    assert partitions.still_ours(fetched) == records(0, 10, 11)
    partitions.note_processed(records(0, 10, 11))
    # Fetched again from the group's offset: what this replica already published is skipped.
    assert partitions.still_ours(records(0, 10, 11, 12)) == records(0, 12)
