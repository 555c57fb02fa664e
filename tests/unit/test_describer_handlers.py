"""The describer's handler on the in-memory broker: results, skipping, unknown products."""

from __future__ import annotations

from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker

from shopstream.events import (
    CopyRequested,
    DescriptionGenerated,
    Event,
    ProductDeleted,
    ProductUpserted,
)
from shopstream.runtime.batch import BatchHandler
from shopstream.topics import TopicSettings, dead_letter_topic
from shopstream_describer.app import build_service
from shopstream_describer.compliance import Lexicons
from shopstream_describer.config import DescriberSettings, GeneratorConfig
from shopstream_describer.handlers import DescriberState, build_describer_handler
from shopstream_describer.pipeline import DescriberPipeline

pytestmark = pytest.mark.unit

TOPICS = TopicSettings()


def product(version: str = "Navy") -> ProductUpserted:
    return ProductUpserted(
        tenant_id="shop",
        payload={
            "product_id": "p1",
            "title": "Canvas Tote",
            "attributes": {"colour": version},
            "target_locales": ["en", "zh"],
        },
    )


def handler_and_state() -> tuple[BatchHandler[Event], DescriberState]:
    service = build_service(DescriberSettings(model=GeneratorConfig(generator=None)))
    state = DescriberState()
    handle = build_describer_handler(
        service.context, DescriberPipeline(None), state, Lexicons(), TOPICS
    )
    return handle, state


async def test_upsert_yields_one_description_per_locale_then_skips_unchanged() -> None:
    handle, state = handler_and_state()
    first = await handle([product()])
    assert sorted(p.event.payload.locale for p in first) == ["en", "zh"]
    assert all(isinstance(p.event, DescriptionGenerated) for p in first)
    assert {p.topic for p in first} == {TOPICS.descriptions}
    again = await handle([product()])
    assert again == []
    changed = await handle([product("Olive")])
    assert len(changed) == 2
    await handle([ProductDeleted(tenant_id="shop", payload={"product_id": "p1"})])
    assert state.products == {}
    assert state.hashes == {}


async def test_results_have_deterministic_ids() -> None:
    event = product()
    first = await handler_and_state()[0]([event])
    second = await handler_and_state()[0]([event])
    assert [p.event.event_id for p in first] == [p.event.event_id for p in second]


async def test_copy_request_for_an_unknown_product_is_dead_lettered() -> None:
    service = build_service(DescriberSettings(model=GeneratorConfig(generator=None)))
    request = CopyRequested(
        tenant_id="shop",
        payload={
            "campaign_id": "c1",
            "product_ids": ["nope"],
            "channel": "push",
        },
    )
    dead: list[dict[str, Any]] = []

    @service.broker.subscriber(dead_letter_topic(TOPICS.copy_requests))
    async def on_dead(body: dict[str, Any]) -> None:
        dead.append(body)

    async with TestKafkaBroker(service.broker) as broker:
        await broker.publish(request.to_json(), TOPICS.copy_requests)
    assert len(dead) == 1
    assert "unknown products" in str(dead[0])
