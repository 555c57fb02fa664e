"""How a batch's results reach Kafka and its offsets get committed: one strategy per guarantee.

- `AtLeastOnce`: results go through an idempotent producer; the call returns once the broker
  has acknowledged all of them, and FastStream then commits the batch's offsets (ack policy
  `NACK_ON_ERROR`: any exception rewinds the batch for redelivery instead).
- `ExactlyOnce`: results and the batch's next offsets are written in one producer transaction;
  FastStream commits nothing (ack policy `MANUAL`), and an aborted transaction rewinds the batch.
- `InMemory`: FastStream's in-memory `TestKafkaBroker` drives a service that was never started;
  the same `PartitionBatchSender` builds the record batches, which are then handed to the
  broker's own publish, the only path that reaches its in-memory subscribers.

The strategy is picked once; the service's batch loop never asks which one it holds.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from aiokafka import AIOKafkaProducer, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from shopstream.runtime.batch import Publication
from shopstream.runtime.partitions import CommitOffsets
from shopstream.runtime.records import Record, next_offsets
from shopstream.runtime.security import aiokafka_options
from shopstream.runtime.sender import PartitionBatchSender
from shopstream.settings import ServiceSettings

IsolationLevel = Literal["read_committed", "read_uncommitted"]


class Rewindable(Protocol):
    """The batch's FastStream message (either client): `nack` rewinds it for redelivery."""

    async def nack(self) -> None: ...


class Delivery(Protocol):
    async def start(self) -> None: ...

    async def publish(
        self, publications: Sequence[Publication], records: Sequence[Record], message: Rewindable
    ) -> None:
        """Publish a batch's results; return only once they (and, where the strategy commits
        them itself, the batch's offsets) are durable. Raise to have the batch redelivered."""
        ...

    async def stop(self) -> None: ...


class KafkaDelivery(Delivery, Protocol):
    """A delivery to a real broker: it also decides how the subscriber acknowledges."""

    ack_policy: AckPolicy
    isolation_level: IsolationLevel

    def attach(self, subscriber: ConsumerSource) -> CommitOffsets | None:
        """Called once with the service's subscriber; returns how offsets of revoked partitions
        are committed on the way out (None: not needed)."""
        ...


class ConsumerSource(Protocol):
    """The FastStream subscriber: its consumer exists only while the broker runs."""

    @property
    def consumer(self) -> Any: ...  # noqa: ANN401 - aiokafka's consumer is untyped


class _ProducerDelivery:
    """The plain aiokafka producer both Kafka guarantees publish through."""

    ack_policy: AckPolicy
    isolation_level: IsolationLevel

    def __init__(self, settings: ServiceSettings, *, client_id: str, group_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._group_id = group_id
        self._producer: AIOKafkaProducer | None = None
        self._sender: PartitionBatchSender | None = None

    def _transactional_id(self) -> str | None:
        return None

    def attach(self, subscriber: ConsumerSource) -> CommitOffsets | None:
        """Called once with the service's subscriber; returns how offsets of revoked partitions
        are committed on the way out (None: not needed)."""
        return None

    async def start(self) -> None:
        # A plain idempotent aiokafka producer: FastStream's publish path costs ~5x more per
        # event than the whole rest of the runtime (see bench/bus_bench.py).
        batch = self._settings.batch
        self._producer = AIOKafkaProducer(
            **aiokafka_options(self._settings.kafka),
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=batch.producer_linger_ms("aiokafka"),
            transactional_id=self._transactional_id(),
            transaction_timeout_ms=batch.transaction_timeout_ms,
        )
        await self._producer.start()
        self._sender = PartitionBatchSender(self._producer)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        self._producer = None
        self._sender = None

    def _started(self) -> tuple[AIOKafkaProducer, PartitionBatchSender]:
        if self._producer is None or self._sender is None:
            raise RuntimeError("the delivery is used before the service started it")
        return self._producer, self._sender


class AtLeastOnce(_ProducerDelivery):
    ack_policy = AckPolicy.NACK_ON_ERROR
    isolation_level: IsolationLevel = "read_uncommitted"

    def attach(self, subscriber: ConsumerSource) -> CommitOffsets | None:
        # Offsets are committed after the batch, which a rebalance would refuse: the tracker
        # commits the revoked partitions on the way out.
        async def commit(offsets: dict[TopicPartition, int]) -> None:
            consumer = subscriber.consumer
            if consumer is not None:
                await consumer.commit(offsets)

        return commit

    async def publish(
        self, publications: Sequence[Publication], records: Sequence[Record], message: Rewindable
    ) -> None:
        # Send everything first and await the acknowledgements together: one round trip per
        # batch instead of one per event. An exception here rewinds the whole batch.
        _, sender = self._started()
        pending = await sender.send(publications)
        if pending:
            await asyncio.gather(*pending)


class ExactlyOnce(_ProducerDelivery):
    # Offsets are committed inside the producer's transaction, not through FastStream; only
    # committed records of transactional upstreams are read.
    ack_policy = AckPolicy.MANUAL
    isolation_level: IsolationLevel = "read_committed"

    def _transactional_id(self) -> str | None:
        configured = self._settings.batch.transactional_id
        return configured or f"{self._group_id}-{socket.gethostname()}"

    async def publish(
        self, publications: Sequence[Publication], records: Sequence[Record], message: Rewindable
    ) -> None:
        producer, sender = self._started()
        offsets = {TopicPartition(t, p): o for (t, p), o in next_offsets(records).items()}
        try:
            async with producer.transaction():
                await sender.send(publications)
                await producer.send_offsets_to_transaction(offsets, self._group_id)
        except BaseException:
            # The transaction is aborted; rewind so the batch is processed again.
            await message.nack()
            raise


def delivery_for(
    settings: ServiceSettings, *, client_id: str, group_id: str
) -> AtLeastOnce | ExactlyOnce:
    """The Kafka guarantee the settings ask for."""
    chosen = ExactlyOnce if settings.batch.delivery == "exactly_once" else AtLeastOnce
    return chosen(settings, client_id=client_id, group_id=group_id)


class InMemory:
    """Publishes through the broker itself, for FastStream's `TestKafkaBroker` (unit tests)."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._sender = PartitionBatchSender(_BrokerProducer(broker))

    async def start(self) -> None:
        return None

    async def publish(
        self, publications: Sequence[Publication], records: Sequence[Record], message: Rewindable
    ) -> None:
        await asyncio.gather(*await self._sender.send(publications))

    async def stop(self) -> None:
        return None


class _RecordList:
    """Stands in for aiokafka's `BatchBuilder`: keeps the appended records as they are."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None, list[tuple[str, bytes]]]] = []

    def append(
        self,
        *,
        key: bytes,
        value: bytes | None,
        timestamp: int | None,
        headers: list[tuple[str, bytes]],
    ) -> object:
        self.records.append((key, value, headers))
        return self  # never full


class _BrokerProducer:
    """The part of `AIOKafkaProducer` the sender uses, publishing through a FastStream broker."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> _RecordList:
        return _RecordList()

    async def send_batch(
        self, builder: _RecordList, topic: str, *, partition: int
    ) -> asyncio.Future[None]:
        for key, value, headers in builder.records:
            await self._broker.publish(
                value,
                topic,
                key=key,
                headers={name: raw.decode("utf-8") for name, raw in headers} or None,
            )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done
