"""Wire settings, a model and a batch handler to Kafka: the shape every service shares.

Where a batch gets committed: `_on_batch` publishes every result and dead letter, waits until the
broker has acknowledged all of them, and only then returns; FastStream then commits the batch's
offsets (ack policy `NACK_ON_ERROR`: any exception rewinds the batch for redelivery instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter

from shopstream.events import Event, Producer, utc_now
from shopstream.runtime.admin import ensure_topics
from shopstream.runtime.batch import BatchHandler, Publication, process_batch
from shopstream.runtime.codec import EventDecoder, event_headers
from shopstream.runtime.dead_letters import dead_letter_for
from shopstream.runtime.http import HealthServer
from shopstream.runtime.metrics import InferenceRunner, ServiceMetrics
from shopstream.runtime.partitions import PartitionTracker
from shopstream.runtime.records import Record
from shopstream.runtime.security import aiokafka_options, faststream_security
from shopstream.runtime.sender import PartitionBatchSender
from shopstream.settings import ServiceSettings
from shopstream.topics import dead_letter_topic

EventT = TypeVar("EventT", bound=Event)
logger = logging.getLogger("shopstream.service")


class ModelLifecycle(Protocol):
    # `load` may return a report (timings, where the weights came from); the runtime ignores it.
    def load(self) -> object: ...
    def unload(self) -> None: ...


@dataclass(frozen=True)
class ServiceContext:
    """What a service's handler factory may use; built before the broker starts."""

    name: str
    producer: Producer
    settings: ServiceSettings
    metrics: ServiceMetrics
    inference: InferenceRunner
    partitions: PartitionTracker
    """Owned input partitions; services with partitioned state add a listener here."""


StartupHook = Callable[[], Awaitable[None]]


class BatchService(Generic[EventT]):
    def __init__(
        self,
        *,
        name: str,
        version: str,
        settings: ServiceSettings,
        input_topics: Sequence[str],
        output_topics: Sequence[str] = (),
        accepts: type[EventT] | TypeAdapter[EventT],
        build_handler: Callable[[ServiceContext], BatchHandler[EventT]],
        model: ModelLifecycle | None = None,
        startup_hooks: Sequence[Callable[[ServiceContext], StartupHook]] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.metrics = ServiceMetrics(name, self.registry)
        self.context = ServiceContext(
            name=name,
            producer=Producer(name=name, version=version),
            settings=settings,
            metrics=self.metrics,
            inference=InferenceRunner(self.metrics),
            # A revocation may wait for the batch in flight, but well inside the rebalance
            # timeout (the poll interval), or the member is dropped from the group anyway.
            partitions=PartitionTracker(
                self.metrics, drain_seconds=settings.batch.max_poll_interval_ms / 2000
            ),
        )
        self._settings = settings
        self._model = model
        # Two settings may name one topic (e.g. one ordered stream read as two inputs).
        input_topics = list(dict.fromkeys(input_topics))
        # Topics outside the registry (custom names) are created too, with their DLQs.
        self._topics = (
            *input_topics,
            *output_topics,
            *(dead_letter_topic(name) for name in input_topics),
        )
        self._decoder = EventDecoder(accepts, settings.batch.max_event_bytes)
        self._handler = build_handler(self.context)
        self._startup_hooks = [hook(self.context) for hook in startup_hooks]
        self._ready = False
        self._stopping = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._sender: PartitionBatchSender | None = None
        self._client_id = settings.kafka.client_id or f"shopstream-{name}"
        self._group_id = settings.group_id or f"shopstream-{name}"
        self._exactly_once = settings.batch.delivery == "exactly_once"
        self.broker = self._build_broker(name, input_topics)
        self.health = HealthServer(
            self.registry, self._is_ready, settings.http_host, settings.http_port
        )

    def _build_broker(self, name: str, input_topics: Sequence[str]) -> KafkaBroker:
        kafka = self._settings.kafka
        batch = self._settings.batch
        broker = KafkaBroker(
            kafka.bootstrap_servers,
            client_id=self._client_id,
            security=faststream_security(kafka),
            request_timeout_ms=kafka.request_timeout_ms,
            middlewares=[
                KafkaPrometheusMiddleware(registry=self.registry, app_name=f"shopstream-{name}")
            ],
            graceful_timeout=batch.max_poll_interval_ms / 1000,
            logger=logger,
        )
        subscriber = broker.subscriber(
            *input_topics,
            group_id=self._group_id,
            batch=True,
            max_records=batch.max_records,
            batch_timeout_ms=batch.batch_timeout_ms,
            max_poll_interval_ms=batch.max_poll_interval_ms,
            session_timeout_ms=batch.session_timeout_ms,
            heartbeat_interval_ms=batch.heartbeat_interval_ms,
            auto_offset_reset=batch.auto_offset_reset,
            # Exactly-once commits offsets inside the producer's transaction, not through
            # FastStream; it also reads only committed records of transactional upstreams.
            ack_policy=AckPolicy.MANUAL if self._exactly_once else AckPolicy.NACK_ON_ERROR,
            isolation_level="read_committed" if self._exactly_once else "read_uncommitted",
            parser=_tolerant_parser,
            decoder=_undecoded,
            listener=self.context.partitions,
        )
        subscriber(self._on_batch)
        if not self._exactly_once:
            # Exactly-once commits with each batch's transaction; at-least-once commits after the
            # batch, which a rebalance would refuse: commit the revoked partitions on the way out.
            async def commit(offsets: dict[TopicPartition, int]) -> None:
                consumer = subscriber.consumer
                if consumer is not None:
                    await consumer.commit(offsets)

            self.context.partitions.commit = commit
        return broker

    async def _on_batch(self, message: KafkaMessage) -> None:
        raw = message.raw_message
        records = [Record.of(item) for item in (raw if isinstance(raw, tuple | list) else (raw,))]
        # A batch fetched while a new assignment is being caught up with waits for it.
        await self.context.partitions.settled()
        self.context.partitions.batch_started()
        try:
            await self._handle_batch(records, message)
        finally:
            self.context.partitions.batch_finished()

    async def _handle_batch(self, records: list[Record], message: KafkaMessage) -> None:
        self.metrics.batch_size.observe(len(records))
        self.metrics.events_total.labels("consumed").inc(len(records))
        outcome = await process_batch(records, self._decoder, self._handler)
        dead_letters = [
            Publication(
                dead_letter_topic(record.topic),
                dead_letter_for(record, failure, self.context.producer),
                key=record.key or b"",
            )
            for record, failure in outcome.failures
        ]
        publications = [*outcome.publications, *dead_letters]
        if self._exactly_once:
            await self._publish_in_transaction(publications, records, message)
        else:
            await self._publish_all(publications)
        self.context.partitions.note_processed(records)
        for _, failure in outcome.failures:
            self.metrics.dead_letters_total.labels(failure.reason.value).inc()
            logger.warning(
                "dead-lettered a record",
                extra={"reason": failure.reason.value, "error_class": failure.error_class},
            )
        self.metrics.events_total.labels("published").inc(len(outcome.publications))
        self.metrics.events_total.labels("dead_lettered").inc(len(dead_letters))
        self.metrics.events_total.labels("tombstone_skipped").inc(outcome.tombstones)
        now = utc_now()
        for event in outcome.events:
            lag = (now - event.occurred_at).total_seconds()
            self.metrics.e2e_lag_seconds.observe(max(0.0, lag))

    async def _publish_in_transaction(
        self, publications: Sequence[Publication], records: Sequence[Record], message: KafkaMessage
    ) -> None:
        assert self._producer is not None, "exactly-once needs the service started"
        assert self._sender is not None, "started producers come with a sender"
        next_offsets: dict[TopicPartition, int] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            next_offsets[partition] = max(next_offsets.get(partition, 0), record.offset + 1)
        try:
            async with self._producer.transaction():
                await self._sender.send(publications)
                await self._producer.send_offsets_to_transaction(next_offsets, self._group_id)
        except BaseException:
            # The transaction is aborted; rewind so the batch is processed again.
            await message.nack()
            raise

    async def _publish_all(self, publications: Sequence[Publication]) -> None:
        # Send everything first and await the acknowledgements together: one round trip per
        # batch instead of one per event. An exception here rewinds the whole batch.
        if self._producer is None:
            # Not started through `start()`: FastStream's in-memory TestKafkaBroker drives the
            # service, and only the broker's own publish reaches its in-memory subscribers.
            for publication in publications:
                event = publication.event
                await self.broker.publish(
                    None if event is None else event.to_json(),
                    publication.topic,
                    key=publication.key_bytes(),
                    headers=None if event is None else event_headers(event),
                )
            return
        assert self._sender is not None, "started producers come with a sender"
        pending = await self._sender.send(publications)
        if pending:
            await asyncio.gather(*pending)

    @property
    def ready(self) -> bool:
        return self._ready

    async def _is_ready(self) -> bool:
        """Ready = model loaded, consuming, and the cluster answers right now."""
        return self._ready and await self.broker.ping(timeout=2.0)

    async def start(self) -> None:
        """Serve health, create topics, load the model, run start-up hooks, then consume."""
        await self.health.start()
        if self._settings.create_topics:
            await ensure_topics(self._settings.kafka, self._settings.topics.specs(self._topics))
        if self._model is not None:
            started = time.perf_counter()
            await asyncio.to_thread(self._model.load)
            seconds = time.perf_counter() - started
            self.metrics.model_load_seconds.set(seconds)
            logger.info("model loaded", extra={"seconds": round(seconds, 3)})
        for hook in self._startup_hooks:
            await hook()
        # Results go through a plain idempotent aiokafka producer: FastStream's publish path
        # costs ~5x more per event than the whole rest of the runtime (see bench/bus_bench.py).
        batch = self._settings.batch
        self._producer = AIOKafkaProducer(
            **aiokafka_options(self._settings.kafka),
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=batch.linger_ms,
            transactional_id=(
                (batch.transactional_id or f"{self._group_id}-{socket.gethostname()}")
                if self._exactly_once
                else None
            ),
            transaction_timeout_ms=batch.transaction_timeout_ms,
        )
        await self._producer.start()
        self._sender = PartitionBatchSender(self._producer)
        await self.broker.start()
        self._ready = True
        self.metrics.ready.set(1)
        logger.info(
            "service ready",
            extra={"service": self.context.name, "http_port": self.health.port},
        )

    async def stop(self) -> None:
        """Drain: stop fetching, finish and commit the batch in flight, then release the model."""
        self._ready = False
        self.metrics.ready.set(0)
        await self.broker.stop()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        self.context.inference.shutdown()
        if self._model is not None:
            await asyncio.to_thread(self._model.unload)
        await self.health.stop()
        logger.info("service stopped", extra={"service": self.context.name})

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Run until SIGTERM or SIGINT, then drain."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        try:
            await self.start()
            await self._stopping.wait()
        finally:
            with contextlib.suppress(Exception):
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)
            await self.stop()


async def _tolerant_parser(
    records: tuple[ConsumerRecord[bytes, bytes], ...],
    original_parser: Callable[[tuple[ConsumerRecord[bytes, bytes], ...]], Awaitable[Any]],
) -> Any:  # noqa: ANN401 - FastStream's parser contract
    # FastStream decodes every header as UTF-8 while parsing a batch; one record with a binary
    # or null header would fail the whole batch forever. Such headers are made printable here
    # (the record's key and value stay byte-exact for its dead letter).
    if any(not _printable_headers(record.headers) for record in records):
        records = tuple(
            dataclasses.replace(record, headers=_safe_headers(record.headers)) for record in records
        )
    return await original_parser(records)


def _printable_headers(headers: Sequence[tuple[str, bytes | None]]) -> bool:
    try:
        for _, value in headers:
            if value is None:
                return False
            value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _safe_headers(headers: Sequence[tuple[str, bytes | None]]) -> list[tuple[str, bytes]]:
    return [
        (name, (value or b"").decode("utf-8", errors="replace").encode("utf-8"))
        for name, value in headers
    ]


async def _undecoded(message: KafkaMessage) -> None:
    # Records are decoded one by one in `process_batch`, so one bad record cannot fail the
    # whole batch inside FastStream's default JSON decoder.
    return None
