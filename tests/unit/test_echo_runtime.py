"""The runtime on FastStream's in-memory TestKafkaBroker (a fake broker, unit tests only)."""

from __future__ import annotations

import json

import pytest
from faststream.kafka import TestKafkaBroker

from shopstream.echo import EchoSettings, build_echo_service
from shopstream.events import ReviewSubmitted
from support.memory import IN_MEMORY

pytestmark = pytest.mark.unit


def review(text: str = "great", tenant: str = "acme") -> ReviewSubmitted:
    return ReviewSubmitted(
        tenant_id=tenant, payload={"review_id": "r1", "product_id": "p1", "text": text}
    )


async def test_good_record_is_echoed_with_deterministic_id() -> None:
    service = build_echo_service(EchoSettings(create_topics=False, kafka=IN_MEMORY))
    received: list[bytes] = []

    @service.broker.subscriber("shop.reviews.echo")
    async def sink(body: dict[str, object]) -> None:
        received.append(json.dumps(body).encode())

    event = review()
    async with TestKafkaBroker(service.broker):
        await service.broker.publish(event.to_json(), "shop.reviews.submitted")
        await service.broker.publish(event.to_json(), "shop.reviews.submitted")
    assert len(received) == 2
    first, second = (json.loads(item) for item in received)
    assert first["event_id"] == second["event_id"] != str(event.event_id)
    assert first["causation_id"] == str(event.event_id)
