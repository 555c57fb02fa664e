"""What every service promises, written once; each service's module subclasses `ServiceContract`.

In the style of FastStream's `tests/brokers/base/*.py`: the base class holds the tests, and a
subclass says how to build its service (with fake or light models), what one valid input looks
like, where it goes in and comes out, and how its restorable state is seeded and checked.

- poison records go to `<input topic>.dlq` alone, with a reason (in-memory broker);
- metrics are exported over HTTP (in-memory broker, real health server);
- SIGTERM drains the batch in flight and commits it (real broker);
- a restart rebuilds the state the service keeps (real broker).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
import pytest
from faststream.kafka import TestKafkaBroker
from prometheus_client.parser import text_string_to_metric_families

from shopstream.events import Event
from shopstream.kafka_io import publish_events
from shopstream.runtime.service import BatchService
from shopstream.settings import BatchSettings, KafkaSettings, ServiceSettings
from shopstream.topics import dead_letter_topic
from support.kafka import committed_offsets, records_to_end, unique
from support.memory import IN_MEMORY, sink

AnyService = BatchService[Any]

UNDECODABLE = b"\xff\xfe\x00 not utf-8 \xc3\x28"
"""A record no consumer can read as text: every service dead-letters it as `invalid_utf8`."""

DRAIN_SECONDS = 60.0


@dataclass(frozen=True)
class Rejected:
    """A well-formed input the service turns away, and the reason its dead letter names."""

    value: bytes
    reason: str
    topic: str | None = None
    """Where it is published; None: the contract's input topic, in the valid events' batch."""


class ServiceContract:
    """The contract tests; a subclass named `Test...` fills in the service-specific parts."""

    name: ClassVar[str]
    """The service's name: its metrics are `shopstream_<name>_*`, its producer name is it."""
    input: ClassVar[str]
    """The `TopicSettings` field of the input topic the contract publishes to."""
    output: ClassVar[str]
    """The `TopicSettings` field of the topic a valid input's result goes to."""

    # --- what a subclass supplies -------------------------------------------------------

    def settings(self, kafka: KafkaSettings, prefix: str) -> ServiceSettings:
        """Settings on topics named after `prefix` (see `prefixed_topics`, `common_settings`)."""
        raise NotImplementedError

    def build(self, settings: ServiceSettings) -> AnyService:
        """The service through its `build_service`, with fake or light models."""
        raise NotImplementedError

    def input_topic(self, settings: ServiceSettings) -> str:
        return str(getattr(settings.topics, self.input))

    def output_topic(self, settings: ServiceSettings) -> str:
        return str(getattr(settings.topics, self.output))

    def valid_event(self, index: int) -> Event:
        """A fresh input with one result on the output topic; `index` tells inputs apart."""
        raise NotImplementedError

    def rejected(self, settings: ServiceSettings) -> Rejected | None:
        """A well-formed input the service dead-letters, where it has a natural one."""
        return None

    # --- shared plumbing ----------------------------------------------------------------

    @property
    def metric_prefix(self) -> str:
        return f"shopstream_{self.name}"

    def in_memory_service(self) -> tuple[ServiceSettings, AnyService]:
        settings = self.settings(IN_MEMORY, unique(f"contract.{self.name}"))
        settings = settings.model_copy(update={"create_topics": False})
        return settings, self.build(settings)

    # --- the contract -------------------------------------------------------------------

    @pytest.mark.unit
    async def test_poison_goes_to_the_dead_letter_topic_alone(self) -> None:
        settings, service = self.in_memory_service()
        source = self.input_topic(settings)
        rejected = self.rejected(settings)
        rejected_topic = (rejected.topic or source) if rejected else source
        results = sink(service, self.output_topic(settings))
        dead = sink(service, dead_letter_topic(source))
        dead_elsewhere = (
            sink(service, dead_letter_topic(rejected_topic)) if rejected_topic != source else dead
        )
        valid = [self.valid_event(index) for index in range(3)]
        batch: list[bytes] = [valid[0].to_json(), UNDECODABLE, valid[1].to_json()]
        if rejected is not None and rejected.topic is None:
            batch.append(rejected.value)
        batch.append(valid[2].to_json())
        async with TestKafkaBroker(service.broker) as broker:
            # One call, one batch: the poison records share it with the valid events.
            await broker.publish_batch(*batch, topic=source)
            if rejected is not None and rejected.topic is not None:
                await broker.publish(rejected.value, rejected.topic)

        assert {r["causation_id"] for r in results} == {str(e.event_id) for e in valid}, (
            "every valid event of the batch has its results, and nothing else does"
        )
        expected = [(source, "invalid_utf8")]
        if rejected is not None:
            expected.append((rejected_topic, rejected.reason))
        letters = dead if dead is dead_elsewhere else [*dead, *dead_elsewhere]
        found = sorted((d["payload"]["original_topic"], d["payload"]["reason"]) for d in letters)
        assert found == sorted(expected), "exactly the poison records are dead-lettered"
        assert all(d["payload"]["service"] == self.name for d in letters)
        assert all(d["payload"]["error_message"] for d in letters), "each says why"

    @pytest.mark.unit
    async def test_metrics_are_exported_over_http(self) -> None:
        settings, service = self.in_memory_service()
        async with TestKafkaBroker(service.broker) as broker:
            await broker.publish_batch(
                self.valid_event(0).to_json(), topic=self.input_topic(settings)
            )
        await service.health.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.health.port}") as web:
                scraped = await web.get("/metrics")
                live = await web.get("/health/live")
                ready = await web.get("/health/ready")
        finally:
            await service.health.stop()
        assert scraped.status_code == 200
        samples = _samples(scraped.text)
        events = f"{self.metric_prefix}_events_total"
        assert samples[(events, (("status", "consumed"),))] == 1
        assert samples[(events, (("status", "published"),))] >= 1
        assert samples[(f"{self.metric_prefix}_ready", ())] == 0, "not started, so not ready"
        assert (live.status_code, ready.status_code) == (200, 503)

    @pytest.mark.integration
    async def test_sigterm_drains_the_batch_in_flight(self, kafka: KafkaSettings) -> None:
        settings = self.settings(kafka, unique(f"contract.{self.name}-drain"))
        service = self.build(settings)
        group = settings.group_id
        assert group is not None, "contract settings name their consumer group"
        source, sink = self.input_topic(settings), self.output_topic(settings)
        _stop_when_the_first_batch_starts(service)
        running = asyncio.create_task(service.run())
        try:
            await _until_ready(service)
            prefix = self.metric_prefix
            assert service.registry.get_sample_value(f"{prefix}_ready") == 1
            inputs = [self.valid_event(index) for index in range(6)]
            await publish_events(kafka, source, inputs)
            await asyncio.wait_for(asyncio.shield(running), DRAIN_SECONDS)
        finally:
            if not running.done():
                service.request_stop()
                await running

        committed = await committed_offsets(kafka, group, source)
        published = await records_to_end(kafka, source)
        results = {json.loads(r.value)["causation_id"] for r in await records_to_end(kafka, sink)}
        done = [r for r in published if r.offset < committed.get(r.partition, 0)]
        assert done, "the batch in flight was finished and committed before the service stopped"
        for record in published:
            event_id = json.loads(record.value)["event_id"]
            is_done = record.offset < committed.get(record.partition, 0)
            assert (event_id in results) == is_done, (
                "every committed input has its result (none lost) and no uncommitted one has "
                f"(none redone): offset {record.offset}, committed {committed}"
            )
        consumed = service.registry.get_sample_value(
            f"{prefix}_events_total", {"status": "consumed"}
        )
        assert consumed == len(done), "nothing fetched after the stop was requested"


class StatefulServiceContract(ServiceContract):
    """The contract of a service that rebuilds state on start (a table, a replay, its own
    compacted output): a fresh instance must come back with it. Echo keeps no state, so it
    runs the plain `ServiceContract`."""

    async def seed_state(self, service: AnyService, settings: ServiceSettings) -> None:
        """Give the running service state worth restoring, and wait until it holds it."""
        raise NotImplementedError

    async def check_state_restored(self, service: AnyService, settings: ServiceSettings) -> None:
        """On a fresh instance: show, through its results, that the seeded state came back."""
        raise NotImplementedError

    @pytest.mark.integration
    async def test_restart_rebuilds_state(self, kafka: KafkaSettings) -> None:
        settings = self.settings(kafka, unique(f"contract.{self.name}-restart"))
        async with started(self.build(settings)) as first:
            await self.seed_state(first, settings)
        async with started(self.build(settings)) as second:
            await self.check_state_restored(second, settings)


async def until_sample(
    service: AnyService,
    name: str,
    wanted: Callable[[float | None], bool],
    labels: dict[str, str] | None = None,
    within: float = 30.0,
) -> None:
    """Wait until the service's metric sample `name` (with `labels`) satisfies `wanted`."""
    deadline = asyncio.get_running_loop().time() + within
    while not wanted(service.registry.get_sample_value(name, labels)):
        assert asyncio.get_running_loop().time() < deadline, f"{name} {labels or ''} never came"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def started(service: AnyService) -> AsyncIterator[AnyService]:
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def common_settings(kafka: KafkaSettings, prefix: str) -> dict[str, Any]:
    """Settings every contract service shares: its own consumer group, an ephemeral health
    port, and batches with short waits and quick group membership."""
    return {
        "kafka": kafka,
        "group_id": f"{prefix}.group",
        "http_port": 0,
        "batch": BatchSettings(session_timeout_ms=6_000, heartbeat_interval_ms=500),
    }


def _samples(exposition: str) -> Mapping[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def _stop_when_the_first_batch_starts(service: AnyService) -> None:
    """Request the stop (what the SIGTERM handler does) the moment the first batch is counted
    as consumed: that batch is then certainly in flight, its results not yet published."""
    consumed = service.context.metrics.events_total.labels("consumed")
    count = consumed.inc
    once = itertools.count()

    def inc(amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
        count(amount, exemplar)
        if next(once) == 0:
            service.request_stop()

    consumed.inc = inc  # type: ignore[method-assign]


async def _until_ready(service: AnyService, within: float = 60.0) -> None:
    """Wait until the running service answers /health/ready over HTTP."""
    deadline = asyncio.get_running_loop().time() + within
    async with httpx.AsyncClient() as web:
        while asyncio.get_running_loop().time() < deadline:
            try:
                answer = await web.get(f"http://127.0.0.1:{service.health.port}/health/ready")
            except (AssertionError, httpx.TransportError):
                answer = None  # the health server is not up yet
            if answer is not None and answer.status_code == 200:
                return
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{service.context.name} did not become ready within {within} s")
