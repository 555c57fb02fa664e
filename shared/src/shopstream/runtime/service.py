"""Wire settings, a model and a batch handler to Kafka: the shape every service shares.

Where a batch gets committed: `_on_batch` hands every result and dead letter to the service's
`Delivery` (see `runtime/delivery.py`) and returns only once they are durable. At least once, the
broker has then acknowledged all of them and FastStream commits the batch's offsets (ack policy
`NACK_ON_ERROR`: any exception rewinds the batch for redelivery instead); exactly once, the
results and the offsets were committed together in one producer transaction.

Lifecycle: health, topics, model load, components (`runtime/lifecycle.py`) in order, the
consumer group; on the way out the reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter

from shopstream.events import Event, Lineage, Producer, ResultEvent, result_event_id, utc_now
from shopstream.runtime.admin import ensure_topics
from shopstream.runtime.batch import BatchHandler, FatalServiceError, Publication, process_batch
from shopstream.runtime.codec import EventDecoder
from shopstream.runtime.confluent import (
    ConfluentAtLeastOnce,
    ConfluentExactlyOnce,
    RebalanceBridge,
    confluent_delivery_for,
)
from shopstream.runtime.confluent_consumer import ConfluentConsumer
from shopstream.runtime.dead_letters import dead_letter_for
from shopstream.runtime.delivery import (
    Delivery,
    InMemory,
    KafkaDelivery,
    Rewindable,
    delivery_for,
)
from shopstream.runtime.http import HealthServer
from shopstream.runtime.lifecycle import AssignmentListener, Component, ModelLifecycle
from shopstream.runtime.metrics import InferenceRunner, ServiceMetrics, observe_many
from shopstream.runtime.partitions import PartitionTracker
from shopstream.runtime.records import Record, headers_printable, printable_headers
from shopstream.runtime.security import faststream_security
from shopstream.settings import BatchSettings, ServiceSettings
from shopstream.topics import dead_letter_topic

__all__ = ["BatchService", "Component", "ModelLifecycle", "ServiceContext"]

EventT = TypeVar("EventT", bound=Event)
ResultT = TypeVar("ResultT", bound=ResultEvent)
ComponentT = TypeVar("ComponentT", bound=Component)
logger = logging.getLogger("shopstream.service")
YOUNG_GENERATION_OBJECTS = 20_000
"""The cyclic collector's first threshold while a service runs (CPython's default is 700).

A batch's events, records and results live for the whole batch: about 10,000 objects at 500
records. With young collections every 700 allocations they outlive two generations, reach the
oldest, and bring on full collections that walk every long-lived object, the recommender's
growing state included. Above a batch's allocations they die young, as the collector assumes.
The recommender's ingestion in process (400,000 views, batches of 500): full collections had
cost 12.7 µs per event; at 20,000 there were none, and a young collection pauses about 4.5 ms
(12 ms at 50,000, for the same throughput)."""


@dataclass(frozen=True)
class ServiceContext:
    """What a service's handler factory may use; built before the broker starts."""

    name: str
    producer: Producer
    settings: ServiceSettings
    metrics: ServiceMetrics
    inference: InferenceRunner
    partitions: PartitionTracker
    """Owned input partitions; components with `on_assigned` hear of every assignment."""

    def result(
        self,
        cls: type[ResultT],
        cause: Event,
        lineage: Lineage,
        payload: object,
        *,
        extra: str = "",
        correlation_fallback: str | None = None,
    ) -> ResultT:
        """A `cls` result of `cause`. Its id is deterministic, so a batch redone after a crash
        or a rebalance republishes the same results; `extra` tells apart results of one cause
        (a locale, a kind). The correlation id is the cause's, else `correlation_fallback`, else
        the cause's id."""
        # Every concrete result class fixes its own `event_type`; the base class cannot.
        return cls(  # type: ignore[call-arg]
            event_id=result_event_id(self.name, cause.event_id, lineage, extra=extra),
            tenant_id=cause.tenant_id,
            correlation_id=cause.correlation_id or correlation_fallback or str(cause.event_id),
            causation_id=cause.event_id,
            producer=self.producer,
            lineage=lineage,
            payload=payload,
        )


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
        components: Sequence[Component] | Callable[[ServiceContext], Sequence[Component]] = (),
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
        # A factory, like `build_handler`, for components that run work through the context
        # (e.g. embedding on the inference thread).
        self._components = list(components(self.context) if callable(components) else components)
        self._started: list[Component] = []
        for component in self._components:
            if isinstance(component, AssignmentListener):
                self.context.partitions.add_listener(component)
        self._ready = False
        self._collector_thresholds: tuple[int, int, int] | None = None
        self._stopping = asyncio.Event()
        self._client_id = settings.kafka.client_id or f"shopstream-{name}"
        self._group_id = settings.group_id or f"shopstream-{name}"
        self._rebalance: RebalanceBridge | None = None
        self._confluent: ConfluentConsumer | None = None
        self.broker: KafkaBroker | None = None
        """FastStream's broker on aiokafka (unit tests drive it with `TestKafkaBroker`); None on
        confluent-kafka, where the runtime runs its own consumer loop."""
        self._kafka_delivery: Delivery
        self._ping: Callable[[], Awaitable[bool]]
        """Whether the cluster answers right now (readiness), through the client in use."""
        if settings.kafka.client == "confluent":
            confluent = confluent_delivery_for(
                settings, client_id=self._client_id, group_id=self._group_id
            )
            self._kafka_delivery = confluent
            self._confluent = self._build_confluent_consumer(input_topics, confluent)
            self._ping = lambda: confluent.ping(timeout_seconds=2.0)
            self._delivery: Delivery = self._kafka_delivery
        else:
            aiokafka_delivery = delivery_for(
                settings, client_id=self._client_id, group_id=self._group_id
            )
            self._kafka_delivery = aiokafka_delivery
            broker = self.broker = self._build_broker(name, input_topics, aiokafka_delivery)
            self._ping = lambda: broker.ping(timeout=2.0)
            # Until `start()` swaps in the Kafka guarantee, FastStream's in-memory
            # TestKafkaBroker may drive the service, and only the broker's own publish reaches
            # its subscribers.
            self._delivery = InMemory(self.broker)
        self.health = HealthServer(
            self.registry, self._is_ready, settings.http_host, settings.http_port
        )

    def _build_broker(
        self, name: str, input_topics: Sequence[str], delivery: KafkaDelivery
    ) -> KafkaBroker:
        kafka = self._settings.kafka
        batch = self._settings.batch
        broker = KafkaBroker(
            kafka.bootstrap_servers,
            security=faststream_security(kafka),
            middlewares=[
                KafkaPrometheusMiddleware(registry=self.registry, app_name=f"shopstream-{name}")
            ],
            **self._broker_options(),
        )
        subscriber = broker.subscriber(
            *input_topics,
            batch_timeout_ms=batch.batch_timeout_ms,
            max_poll_interval_ms=batch.max_poll_interval_ms,
            parser=_tolerant_parser,
            listener=self.context.partitions,
            **self._subscriber_options(delivery),
        )
        subscriber(self._on_batch)
        self.context.partitions.commit = delivery.attach(subscriber)
        return broker

    def _build_confluent_consumer(
        self,
        input_topics: Sequence[str],
        delivery: ConfluentAtLeastOnce | ConfluentExactlyOnce,
    ) -> ConfluentConsumer:
        self._rebalance = RebalanceBridge(self.context.partitions, delivery)
        consumer = ConfluentConsumer(
            self._settings,
            client_id=self._client_id,
            group_id=self._group_id,
            topics=input_topics,
            isolation_level=delivery.isolation_level,
            max_poll_interval_ms=_librdkafka_poll_interval_ms(self._settings.batch),
            on_assign=self._rebalance.on_assign,
            on_revoke=self._rebalance.on_revoke,
        )
        self.context.partitions.commit = delivery.attach(consumer)
        return consumer

    def _broker_options(self) -> dict[str, Any]:
        """FastStream's broker options (aiokafka)."""
        return {
            "client_id": self._client_id,
            "request_timeout_ms": self._settings.kafka.request_timeout_ms,
            "graceful_timeout": self._settings.batch.max_poll_interval_ms / 1000,
            "logger": logger,
        }

    def _subscriber_options(self, delivery: KafkaDelivery) -> dict[str, Any]:
        """FastStream's batch subscriber options (aiokafka)."""
        batch = self._settings.batch
        return {
            "group_id": self._group_id,
            "batch": True,
            "max_records": batch.max_records,
            "session_timeout_ms": batch.session_timeout_ms,
            "heartbeat_interval_ms": batch.heartbeat_interval_ms,
            "auto_offset_reset": batch.auto_offset_reset,
            "ack_policy": delivery.ack_policy,
            "isolation_level": delivery.isolation_level,
            "decoder": _undecoded,
        }

    async def _on_batch(self, message: KafkaMessage) -> None:
        raw = message.raw_message
        records = [Record.of(item) for item in (raw if isinstance(raw, tuple | list) else (raw,))]
        await self._consume(records, message, prefetched=True)

    async def _consume(
        self,
        records: list[Record],
        message: Rewindable,
        *,
        prefetched: bool = False,
    ) -> None:
        # A batch fetched while a new assignment is being caught up with waits for it.
        await self.context.partitions.settled()
        if prefetched:
            # aiokafka only: librdkafka rebalances inside `consume`, between batches.
            records = self.context.partitions.still_ours(records)
            if not records:
                return
        self.context.partitions.batch_started()
        try:
            await self._handle_batch(records, message)
        except FatalServiceError:
            # A lost GPU or a corrupt model: no retry helps here. The process drains and exits
            # without committing this batch, so a healthy replica takes it over.
            logger.critical("fatal error; the service stops", exc_info=True)
            self.request_stop()
            raise
        finally:
            self.context.partitions.batch_finished()

    async def _handle_batch(self, records: list[Record], message: Rewindable) -> None:
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
        await self._delivery.publish([*outcome.publications, *dead_letters], records, message)
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
        observe_many(
            self.metrics.e2e_lag_seconds,
            [max(0.0, (now - event.occurred_at).total_seconds()) for event in outcome.events],
        )

    @property
    def ready(self) -> bool:
        return self._ready

    def component(self, kind: type[ComponentT]) -> ComponentT:
        """The service's component of type `kind` (its state, for tests and demos)."""
        for component in self._components:
            if isinstance(component, kind):
                return component
        raise LookupError(f"{self.context.name} has no {kind.__name__} component")

    async def _is_ready(self) -> bool:
        """Ready = model loaded, consuming, and the cluster answers right now."""
        return self._ready and await self._ping()

    async def start(self) -> None:
        """Serve health, create topics, load the model, start the components, then consume."""
        await self.health.start()
        if self._settings.create_topics:
            await ensure_topics(self._settings.kafka, self._settings.topics.specs(self._topics))
        if self._model is not None:
            started = time.perf_counter()
            await asyncio.to_thread(self._model.load)
            seconds = time.perf_counter() - started
            self.metrics.model_load_seconds.set(seconds)
            logger.info("model loaded", extra={"seconds": round(seconds, 3)})
        for component in self._components:
            await component.start()
            self._started.append(component)
        await self._kafka_delivery.start()
        self._delivery = self._kafka_delivery
        if self._rebalance is not None:
            self._rebalance.loop = asyncio.get_running_loop()
        # What start-up made (modules, the model, settings) lives as long as the process: out
        # of the cyclic collector's reach, its full collections stop walking it over and over.
        # On the echo service they had cost 5 µs per event (bench/bus_bench.py). `stop` hands
        # them back, so a process that starts services again (tests) collects them as usual.
        gc.freeze()
        self._collector_thresholds = gc.get_threshold()
        gc.set_threshold(YOUNG_GENERATION_OBJECTS, *self._collector_thresholds[1:])
        if self._confluent is not None:
            await self._confluent.start(self._consume)
        elif self.broker is not None:
            await self.broker.start()
        self._ready = True
        self.metrics.ready.set(1)
        logger.info(
            "service ready",
            extra={"service": self.context.name, "http_port": self.health.port},
        )

    async def stop(self) -> None:
        """Drain: stop fetching, finish and commit the batch in flight, stop the components,
        then release the model."""
        self._ready = False
        self.metrics.ready.set(0)
        if self._confluent is not None:
            await self._confluent.stop()
        elif self.broker is not None:
            await self.broker.stop()
        await self._delivery.stop()
        while self._started:
            await self._started.pop().stop()
        self.context.inference.shutdown()
        if self._model is not None:
            await asyncio.to_thread(self._model.unload)
        gc.unfreeze()
        if self._collector_thresholds is not None:
            gc.set_threshold(*self._collector_thresholds)
            self._collector_thresholds = None
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
    if any(not headers_printable(record.headers) for record in records):
        records = tuple(
            dataclasses.replace(record, headers=printable_headers(record.headers))
            for record in records
        )
    return await original_parser(records)


def _librdkafka_poll_interval_ms(batch: BatchSettings) -> int:
    # librdkafka refuses a poll interval shorter than the session timeout (aiokafka takes it).
    if batch.max_poll_interval_ms >= batch.session_timeout_ms:
        return batch.max_poll_interval_ms
    logger.warning(
        "max_poll_interval_ms raised to session_timeout_ms for librdkafka",
        extra={
            "max_poll_interval_ms": batch.max_poll_interval_ms,
            "session_timeout_ms": batch.session_timeout_ms,
        },
    )
    return batch.session_timeout_ms


async def _undecoded(message: KafkaMessage) -> None:
    # Records are decoded one by one in `process_batch`, so one bad record cannot fail the
    # whole batch inside FastStream's default JSON decoder.
    return None
