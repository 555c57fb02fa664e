"""A batch's publications handed to the producer as one record batch per partition.

`AIOKafkaProducer.send` costs a future, a partitioner call and an accumulator lookup per
record, which on the bus path (no model) is as much as all of shopstream's own per-event work.
Appending to aiokafka's `BatchBuilder` and submitting each builder once is the same wire format
at a fraction of that: the records land on the partitions `send` would have chosen (the same
default partitioner over the key), in the same order within a partition, with the same
idempotence and transaction guarantees, which aiokafka applies per submitted batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka.partitioner import DefaultPartitioner

from shopstream.runtime.batch import Publication
from shopstream.runtime.codec import EncodedHeaders

PARTITION_CACHE_SIZE = 65_536
"""Keys whose partition is remembered per topic: result keys repeat (a product's reviews, a
shopper's requests), and aiokafka's murmur2 is pure Python, about as costly per record as the
rest of sending. Cleared when full or when the topic's partition count changes."""


class BatchProducer(Protocol):
    """The part of `AIOKafkaProducer` the sender uses (`delivery.InMemory` has its own)."""

    async def partitions_for(self, topic: str) -> set[int]: ...
    def create_batch(self) -> Any: ...  # noqa: ANN401 - aiokafka's BatchBuilder is untyped
    async def send_batch(self, builder: Any, topic: str, *, partition: int) -> Any: ...  # noqa: ANN401


class PartitionBatchSender:
    def __init__(self, producer: BatchProducer) -> None:
        self._producer = producer
        self._partitioner = DefaultPartitioner()
        self._cache: dict[str, tuple[int, dict[bytes, int]]] = {}
        self._headers = EncodedHeaders()

    def _partition_of(self, topic: str, key: bytes, partitions: list[int]) -> int:
        count, known = self._cache.get(topic, (0, {}))
        if count != len(partitions) or len(known) >= PARTITION_CACHE_SIZE:
            known = {}
            self._cache[topic] = (len(partitions), known)
        partition = known.get(key)
        if partition is None:
            partition = known[key] = self._partitioner(key, partitions, partitions)
        return partition

    async def send(self, publications: Sequence[Publication]) -> list[asyncio.Future[Any]]:
        """Queue every publication; return the futures of the batches (await them for acks)."""
        partitions: dict[str, list[int]] = {}
        builders: dict[tuple[str, int], Any] = {}
        futures: list[asyncio.Future[Any]] = []
        for publication in publications:
            topic = publication.topic
            if topic not in partitions:
                partitions[topic] = sorted(await self._producer.partitions_for(topic))
            key = publication.key_bytes()
            partition = self._partition_of(topic, key, partitions[topic])
            event = publication.event
            value = None if event is None else event.to_json()
            headers = [] if event is None else self._headers(event)
            slot = (topic, partition)
            builder = builders.get(slot)
            if builder is None:
                builder = builders[slot] = self._producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                # Full: submit it and start the next one (a first record always fits).
                futures.append(await self._producer.send_batch(builder, topic, partition=partition))
                builder = builders[slot] = self._producer.create_batch()
                builder.append(key=key, value=value, timestamp=None, headers=headers)
        for (topic, partition), builder in builders.items():
            futures.append(await self._producer.send_batch(builder, topic, partition=partition))
        return futures
