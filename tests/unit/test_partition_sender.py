"""The batch sender picks the partitions `AIOKafkaProducer.send` would, cache or not."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from shopstream.runtime.sender import PartitionBatchSender

pytestmark = pytest.mark.unit


def test_partitions_match_the_default_partitioner_across_layout_changes() -> None:
    sender = PartitionBatchSender(cast(AIOKafkaProducer, cast(Any, object())))
    reference = DefaultPartitioner()
    keys = [f"acme:p{i}".encode() for i in range(200)]
    for count in (6, 6, 12, 3):  # a repeat (cached) and partition-count changes
        partitions = list(range(count))
        for key in keys:
            expected = reference(key, partitions, partitions)
            assert sender._partition_of("results", key, partitions) == expected
    assert len(sender._cache["results"][1]) == len(keys)
