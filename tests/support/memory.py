"""Helpers for services on FastStream's in-memory broker (`TestKafkaBroker`)."""

from __future__ import annotations

from typing import Any

from shopstream.runtime.service import BatchService
from shopstream.settings import KafkaSettings

IN_MEMORY = KafkaSettings(client="aiokafka")
"""Kafka settings for a service that `TestKafkaBroker` drives: FastStream's in-memory broker
fakes aiokafka only, while the default client (confluent-kafka) runs the runtime's own consumer
loop, which only a real broker can feed."""


def sink(service: BatchService[Any], topic: str) -> list[dict[str, Any]]:
    """What the service publishes to `topic` on the in-memory broker, as JSON documents
    (subscribe before the broker starts)."""
    received: list[dict[str, Any]] = []

    @service.broker.subscriber(topic)
    async def collect(body: dict[str, Any]) -> None:
        received.append(body)

    return received
