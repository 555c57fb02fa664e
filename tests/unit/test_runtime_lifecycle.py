"""The runtime's lifecycle, delivery choice and result envelopes, without Kafka."""

from __future__ import annotations

import gc
from collections.abc import Sequence

import pytest
from aiokafka import TopicPartition
from faststream import AckPolicy
from faststream.kafka import TestKafkaBroker

from shopstream.events import (
    Lineage,
    ReviewScored,
    ReviewScoredPayload,
    ReviewSubmitted,
    result_event_id,
)
from shopstream.runtime.batch import FatalServiceError, Publication
from shopstream.runtime.delivery import AtLeastOnce, ExactlyOnce, delivery_for
from shopstream.runtime.partitions import PartitionTracker
from shopstream.runtime.records import Record
from shopstream.runtime.service import YOUNG_GENERATION_OBJECTS, BatchService, ServiceContext
from shopstream.settings import BatchSettings, ServiceSettings
from support.memory import IN_MEMORY

pytestmark = pytest.mark.unit

LINEAGE = Lineage(model_id="m", model_revision="r1")


class Journal:
    def __init__(self) -> None:
        self.entries: list[str] = []


class Model:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def load(self) -> None:
        self._journal.entries.append("model.load")

    def unload(self) -> None:
        self._journal.entries.append("model.unload")


class Part:
    def __init__(self, journal: Journal, name: str, *, fail: bool = False) -> None:
        self._journal = journal
        self.name = name
        self._fail = fail

    async def start(self) -> None:
        if self._fail:
            raise RuntimeError(f"{self.name} cannot start")
        self._journal.entries.append(f"{self.name}.start")

    async def stop(self) -> None:
        self._journal.entries.append(f"{self.name}.stop")


class Listening(Part):
    async def on_assigned(
        self, assigned: frozenset[TopicPartition], tracker: PartitionTracker
    ) -> None:
        self._journal.entries.append(f"{self.name}.assigned:{len(assigned)}")


def service_with(
    journal: Journal, *parts: Part, settings: ServiceSettings | None = None
) -> BatchService[ReviewSubmitted]:
    async def handle(events: Sequence[ReviewSubmitted]) -> list[Publication]:
        return []

    return BatchService(
        name="lifecycle",
        version="0",
        settings=settings or ServiceSettings(create_topics=False, http_port=0, kafka=IN_MEMORY),
        input_topics=["in"],
        accepts=ReviewSubmitted,
        build_handler=lambda _: handle,
        model=Model(journal),
        components=parts,
    )


@pytest.fixture
def kafka_free_delivery(monkeypatch: pytest.MonkeyPatch) -> Journal:
    """The Kafka producer's start and stop recorded instead of connecting."""
    journal = Journal()

    async def start(_: AtLeastOnce) -> None:
        journal.entries.append("delivery.start")

    async def stop(_: AtLeastOnce) -> None:
        journal.entries.append("delivery.stop")

    monkeypatch.setattr(AtLeastOnce, "start", start)
    monkeypatch.setattr(AtLeastOnce, "stop", stop)
    return journal


async def test_components_start_after_the_model_and_stop_in_reverse_before_it_unloads(
    kafka_free_delivery: Journal,
) -> None:
    journal = kafka_free_delivery
    first, second = Part(journal, "first"), Part(journal, "second")
    service = service_with(journal, first, second)
    async with TestKafkaBroker(service.broker):
        await service.start()
        await service.stop()
    assert journal.entries == [
        "model.load",
        "first.start",
        "second.start",
        "delivery.start",
        "delivery.stop",
        "second.stop",
        "first.stop",
        "model.unload",
    ]


async def test_a_running_service_collects_young_garbage_per_batch_not_per_700_objects(
    kafka_free_delivery: Journal,
) -> None:
    before = gc.get_threshold()
    service = service_with(kafka_free_delivery)
    async with TestKafkaBroker(service.broker):
        await service.start()
        running = gc.get_threshold()
        frozen = gc.get_freeze_count()
        await service.stop()
    assert running == (YOUNG_GENERATION_OBJECTS, *before[1:])
    assert frozen > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


async def test_only_started_components_are_stopped_when_start_up_fails(
    kafka_free_delivery: Journal,
) -> None:
    journal = kafka_free_delivery
    service = service_with(journal, Part(journal, "first"), Part(journal, "broken", fail=True))
    with pytest.raises(RuntimeError, match="broken cannot start"):
        await service.start()
    await service.stop()
    assert journal.entries == ["model.load", "first.start", "first.stop", "model.unload"]


async def test_a_component_with_on_assigned_hears_of_assignments() -> None:
    journal = Journal()
    listening = Listening(journal, "table")
    service = service_with(journal, Part(journal, "plain"), listening)
    await service.context.partitions.on_partitions_assigned({TopicPartition("in", 0)})
    assert journal.entries == ["table.assigned:1"]
    assert service.component(Listening) is listening


def test_a_missing_component_is_a_lookup_error() -> None:
    service = service_with(Journal())
    with pytest.raises(LookupError, match="no Part component"):
        service.component(Part)


def test_the_settings_pick_the_delivery_and_its_consumer_options() -> None:
    exactly = ServiceSettings(batch=BatchSettings(delivery="exactly_once"))
    chosen = delivery_for(exactly, client_id="c", group_id="g")
    assert isinstance(chosen, ExactlyOnce)
    assert (chosen.ack_policy, chosen.isolation_level) == (AckPolicy.MANUAL, "read_committed")
    assert chosen.attach(Unconnected()) is None, "committed in transactions"
    plain = delivery_for(ServiceSettings(), client_id="c", group_id="g")
    assert isinstance(plain, AtLeastOnce)
    assert plain.ack_policy == AckPolicy.NACK_ON_ERROR
    assert plain.isolation_level == "read_uncommitted"
    assert plain.attach(Unconnected()) is not None


class Unconnected:
    consumer = None


def result_of(context: ServiceContext, cause: ReviewSubmitted, **options: str) -> ReviewScored:
    payload = ReviewScoredPayload(
        review_id="r1", product_id="p1", label="positive", score=0.9, confidence=0.8
    )
    return context.result(ReviewScored, cause, LINEAGE, payload, **options)


def test_a_result_carries_the_envelope_of_its_cause_and_a_deterministic_id() -> None:
    context = service_with(Journal()).context
    cause = ReviewSubmitted(
        tenant_id="acme", payload={"review_id": "r1", "product_id": "p1", "text": "ok"}
    )
    result = result_of(context, cause, extra="x")
    assert result.event_id == result_event_id("lifecycle", cause.event_id, LINEAGE, extra="x")
    assert result_of(context, cause, extra="x").event_id == result.event_id
    assert result_of(context, cause).event_id != result.event_id
    assert (result.tenant_id, result.causation_id) == ("acme", cause.event_id)
    assert result.producer == context.producer
    assert result.lineage == LINEAGE
    assert result.correlation_id == str(cause.event_id)
    assert result_of(context, cause, correlation_fallback="req-1").correlation_id == "req-1"
    traced = cause.model_copy(update={"correlation_id": "trace-9"})
    assert result_of(context, traced, correlation_fallback="req-1").correlation_id == "trace-9"


async def test_a_fatal_error_stops_the_service_without_publishing_the_batch() -> None:
    async def handle(events: Sequence[ReviewSubmitted]) -> list[Publication]:
        raise FatalServiceError("CUDA device lost")

    service: BatchService[ReviewSubmitted] = BatchService(
        name="fatal",
        version="0",
        settings=ServiceSettings(create_topics=False, http_port=0),
        input_topics=["in"],
        accepts=ReviewSubmitted,
        build_handler=lambda _: handle,
    )
    event = ReviewSubmitted(
        tenant_id="acme", payload={"review_id": "r", "product_id": "p", "text": "ok"}
    )
    record = Record("in", 0, 7, b"acme:p", event.to_json(), ())

    class Untouched:
        async def nack(self) -> None:
            raise AssertionError("the client's loop or FastStream rewinds, not the runtime")

    with pytest.raises(FatalServiceError):
        await service._consume([record], Untouched())
    # `run` is waiting on this: the process drains and exits, and the batch stays uncommitted
    # (it was never noted as processed) for a healthy replica.
    assert service._stopping.is_set()
    assert service.context.partitions.processed == {}
