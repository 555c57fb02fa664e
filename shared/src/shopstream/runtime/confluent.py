"""The runtime on confluent-kafka (librdkafka): same guarantees, the protocol work done in C.

`KAFKA__CLIENT=confluent` swaps three things and nothing else in a service:
- the subscriber is FastStream's `faststream.confluent` batch subscriber (one `consume` call per
  batch on FastStream's consumer thread), with rebalance callbacks bridged to the runtime's
  `PartitionTracker`;
- results go through a librdkafka producer: idempotent, `acks=all`, keys partitioned with
  murmur2 like the Java client and aiokafka, so a key lands on the partition it always did;
- exactly-once writes a batch's results and its next offsets in one librdkafka transaction.

librdkafka calls rebalance callbacks only inside `consume`, that is between two batches: a
revocation never waits for a batch in flight, and the offsets it commits are all published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence
from typing import Any, cast

from aiokafka import TopicPartition
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as ConfluentPartition
from faststream import AckPolicy

from shopstream.runtime.batch import Publication
from shopstream.runtime.codec import EncodedHeaders
from shopstream.runtime.delivery import ConsumerSource, IsolationLevel, Rewindable
from shopstream.runtime.partitions import CommitOffsets, PartitionTracker
from shopstream.runtime.records import Record, headers_printable, next_offsets, printable_headers
from shopstream.runtime.security import librdkafka_options
from shopstream.settings import ServiceSettings

__all__ = [
    "ConfluentAtLeastOnce",
    "ConfluentExactlyOnce",
    "RebalanceBridge",
    "confluent_delivery_for",
    "record_of",
    "tolerant_headers",
]

_POLL_WHEN_FULL_SECONDS = 0.05
_librdkafka_logger = logging.getLogger("shopstream.librdkafka")
logger = logging.getLogger("shopstream.confluent")


def record_of(message: Message) -> Record:
    value = message.value()
    return Record(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=message.key(),
        value=value or b"",
        # `tolerant_headers` ran in the parser: every value is bytes by now.
        headers=tuple(cast("list[tuple[str, bytes]]", message.headers() or ())),
        tombstone=value is None,
    )


def tolerant_headers(messages: Sequence[Message]) -> None:
    """Make binary or null header values printable in place (`records.printable_headers`),
    before FastStream's parser decodes every header as UTF-8. The key and value stay
    byte-exact for the record's dead letter."""
    for message in messages:
        raw = message.headers()
        # Consumed headers come as a list of (name, bytes or None): checked as they are, so the
        # per-record cost stays a scan; only a record that needs repair is copied.
        if not raw or (isinstance(raw, list) and headers_printable(cast("_Pairs", raw))):
            continue
        repaired = printable_headers(_header_pairs(raw))
        message.set_headers(cast("list[tuple[str, str | bytes | None]]", repaired))


_Pairs = list[tuple[str, bytes | None]]


def _header_pairs(raw: object) -> list[tuple[str, bytes | None]]:
    """A consumed record's headers as (name, bytes or None), whatever form confluent gave."""
    pairs = raw.items() if isinstance(raw, dict) else cast("list[tuple[str, object]]", raw)
    return [
        (name, value.encode("utf-8") if isinstance(value, str) else cast("bytes | None", value))
        for name, value in pairs
    ]


def _aiokafka_partitions(partitions: Sequence[ConfluentPartition]) -> set[TopicPartition]:
    return {TopicPartition(partition.topic, partition.partition) for partition in partitions}


class RebalanceBridge:
    """librdkafka's rebalance callbacks, run on the consumer's thread inside `consume`, handed to
    the tracker on the service's event loop. The consumer thread waits for the tracker (state
    catch-up, offsets of revoked partitions), as aiokafka's rebalance listener makes it wait; the
    revoked partitions' offsets are then committed on that same thread, as librdkafka requires
    while it closes or rebalances."""

    def __init__(self, tracker: PartitionTracker, delivery: _ConfluentDelivery) -> None:
        self._tracker = tracker
        self._delivery = delivery
        self.loop: asyncio.AbstractEventLoop | None = None
        """Set by the service when it starts, before the consumer can call back."""

    def on_assign(self, consumer: Any, partitions: list[ConfluentPartition]) -> None:  # noqa: ANN401 - untyped client
        self._wait(self._tracker.on_partitions_assigned(_aiokafka_partitions(partitions)))
        self._delivery.commit_assigned(consumer, partitions, self._tracker.processed)

    def on_revoke(self, consumer: Any, partitions: list[ConfluentPartition]) -> None:  # noqa: ANN401 - untyped client
        self._wait(self._tracker.on_partitions_revoked(_aiokafka_partitions(partitions)))
        self._delivery.commit_revoked(consumer)

    def _wait(self, step: Any) -> None:  # noqa: ANN401 - a coroutine
        if self.loop is None:
            step.close()
            raise RuntimeError("a rebalance callback came before the service started")
        asyncio.run_coroutine_threadsafe(step, self.loop).result()


class _ConfluentDelivery:
    """A librdkafka producer both guarantees publish through."""

    ack_policy: AckPolicy
    isolation_level: IsolationLevel

    def __init__(self, settings: ServiceSettings, *, client_id: str, group_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._group_id = group_id
        self._producer: Producer | None = None
        self._headers = EncodedHeaders()
        self._failures: list[KafkaError] = []
        self._subscriber: ConsumerSource | None = None

    def _config(self) -> dict[str, Any]:
        batch = self._settings.batch
        return {
            **librdkafka_options(self._settings.kafka),
            "client.id": self._client_id,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": batch.linger_ms,
            # murmur2 for keyed records, as the Java client and aiokafka partition them.
            "partitioner": "murmur2_random",
            # Only failed deliveries call back into Python: a callback per acknowledged record
            # took the GIL once per event while `flush` waited.
            "on_delivery": self._on_delivery,
            "delivery.report.only.error": True,
        }

    def attach(self, subscriber: ConsumerSource) -> CommitOffsets | None:
        self._subscriber = subscriber
        return None

    def commit_revoked(self, consumer: Any) -> None:  # noqa: ANN401 - confluent's Consumer
        """On the consumer's thread, in a revocation: commit what the tracker handed over."""
        return

    def commit_assigned(
        self,
        consumer: Any,  # noqa: ANN401 - confluent's Consumer
        partitions: list[ConfluentPartition],
        processed: dict[TopicPartition, int],
    ) -> None:
        """On the consumer's thread, in an assignment: catch the group's offsets up with what
        this replica published but could not commit."""
        return

    async def start(self) -> None:
        # librdkafka's own log lines go through the service's logging, not straight to stderr.
        self._producer = Producer(self._config(), logger=_librdkafka_logger)

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await asyncio.to_thread(producer.flush, self._timeout_seconds())

    def _timeout_seconds(self) -> float:
        return self._settings.batch.transaction_timeout_ms / 1000

    def _started(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("the delivery is used before the service started it")
        return self._producer

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(error)

    def _produce(self, publications: Sequence[Publication]) -> None:
        producer = self._started()
        headers = self._headers
        for publication in publications:
            event = publication.event
            key = publication.key_bytes()
            value = None if event is None else event.to_json()
            # librdkafka takes any header list; its stub names a narrower type.
            encoded: Any = None if event is None else headers(event)
            while True:
                try:
                    producer.produce(
                        publication.topic,
                        value=value,
                        key=key,
                        headers=encoded,
                    )
                    break
                except BufferError:
                    # The local queue is full: serve acknowledgements until there is room.
                    producer.poll(_POLL_WHEN_FULL_SECONDS)

    def _raise_failures(self) -> None:
        failures, self._failures = self._failures, []
        if failures:
            raise KafkaException(failures[0])

    def _group_consumer(self) -> Any:  # noqa: ANN401 - confluent's Consumer
        source = self._subscriber.consumer if self._subscriber is not None else None
        consumer = getattr(source, "consumer", None)
        if consumer is None:
            raise RuntimeError("the subscriber's consumer is not running")
        return consumer


class ConfluentAtLeastOnce(_ConfluentDelivery):
    ack_policy = AckPolicy.NACK_ON_ERROR
    isolation_level: IsolationLevel = "read_uncommitted"

    def __init__(self, settings: ServiceSettings, *, client_id: str, group_id: str) -> None:
        super().__init__(settings, client_id=client_id, group_id=group_id)
        self._revoked: list[ConfluentPartition] = []

    def attach(self, subscriber: ConsumerSource) -> CommitOffsets | None:
        super().attach(subscriber)

        async def hand_over(offsets: dict[TopicPartition, int]) -> None:
            # Committed by `commit_revoked` on the consumer's own thread right after: a commit
            # from any other thread deadlocks with a closing consumer.
            self._revoked = [
                ConfluentPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()
            ]

        return hand_over

    def commit_assigned(
        self,
        consumer: Any,  # noqa: ANN401 - confluent's Consumer
        partitions: list[ConfluentPartition],
        processed: dict[TopicPartition, int],
    ) -> None:
        # librdkafka evicts a member whose batch outlasts the poll interval, and rejoins only at
        # the next `consume`: the batch's commit comes in between and is refused, though its
        # results are published. Without this the same batch would be redone after every
        # rejoin, forever if every batch is that slow (aiokafka rejoins in the background and
        # its commit goes through). Only offsets ahead of the group's are committed, so a
        # partition another replica moved on in the meantime is never wound back.
        mine = [
            ConfluentPartition(p.topic, p.partition, processed[key])
            for p in partitions
            if (key := TopicPartition(p.topic, p.partition)) in processed
        ]
        if not mine:
            return
        try:
            committed = {
                (c.topic, c.partition): c.offset
                for c in consumer.committed(
                    [ConfluentPartition(p.topic, p.partition) for p in mine]
                )
            }
            ahead = [p for p in mine if p.offset > committed.get((p.topic, p.partition), -1)]
            if ahead:
                consumer.commit(offsets=ahead, asynchronous=False)
                logger.info(
                    "committed published offsets on assignment", extra={"partitions": len(ahead)}
                )
        except KafkaException:
            logger.exception("catching up the group's offsets failed; a batch may be redone")

    def commit_revoked(self, consumer: Any) -> None:  # noqa: ANN401 - confluent's Consumer
        revoked, self._revoked = self._revoked, []
        if not revoked:
            return
        try:
            consumer.commit(offsets=revoked, asynchronous=False)
        except KafkaException as error:
            # Refused after an eviction (the batch outlasted the poll interval); the group moves
            # on either way, and `commit_assigned` catches up if the partition comes back.
            logger.warning(
                "committing revoked partitions failed; their last batch may be redone",
                extra={"error": str(error)},
            )

    async def publish(
        self,
        publications: Sequence[Publication],
        records: Sequence[Record],
        message: Rewindable,
    ) -> None:
        # Queue everything, then wait for every acknowledgement at once (flush serves the
        # failed deliveries' callbacks): one round trip per batch. An exception rewinds it.
        producer = self._started()
        self._failures = []
        self._produce(publications)
        left = await asyncio.to_thread(producer.flush, self._timeout_seconds())
        self._raise_failures()
        if left:
            raise TimeoutError(f"{left} results not acknowledged in {self._timeout_seconds()} s")


class ConfluentExactlyOnce(_ConfluentDelivery):
    ack_policy = AckPolicy.MANUAL
    isolation_level: IsolationLevel = "read_committed"

    def _config(self) -> dict[str, Any]:
        batch = self._settings.batch
        transactional_id = batch.transactional_id or f"{self._group_id}-{socket.gethostname()}"
        config = super()._config()
        return {
            **config,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": batch.transaction_timeout_ms,
            # librdkafka refuses a request timeout longer than the transaction's.
            "socket.timeout.ms": min(
                int(config["socket.timeout.ms"]), batch.transaction_timeout_ms
            ),
        }

    async def start(self) -> None:
        await super().start()
        # Fences a predecessor with the same transactional id and aborts its open transaction.
        await asyncio.to_thread(self._started().init_transactions, self._timeout_seconds())

    async def publish(
        self,
        publications: Sequence[Publication],
        records: Sequence[Record],
        message: Rewindable,
    ) -> None:
        producer = self._started()
        offsets = [ConfluentPartition(t, p, o) for (t, p), o in next_offsets(records).items()]
        timeout = self._timeout_seconds()
        self._failures = []
        try:
            producer.begin_transaction()
            self._produce(publications)
            group = self._group_consumer().consumer_group_metadata()
            await asyncio.to_thread(producer.send_offsets_to_transaction, offsets, group, timeout)
            await asyncio.to_thread(producer.commit_transaction, timeout)
            self._raise_failures()
        except BaseException:
            await self._abort()
            await message.nack()
            raise

    async def _abort(self) -> None:
        producer = self._started()
        # No transaction open, or the producer was fenced: the batch is redone either way.
        with contextlib.suppress(KafkaException):
            await asyncio.to_thread(producer.abort_transaction, self._timeout_seconds())
        self._failures = []


def confluent_delivery_for(
    settings: ServiceSettings, *, client_id: str, group_id: str
) -> ConfluentAtLeastOnce | ConfluentExactlyOnce:
    chosen = (
        ConfluentExactlyOnce if settings.batch.delivery == "exactly_once" else ConfluentAtLeastOnce
    )
    return chosen(settings, client_id=client_id, group_id=group_id)
