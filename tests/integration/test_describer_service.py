"""The describer on a real broker (composer path, no model): descriptions, skip, copy, DLQ."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from shopstream.events import CopyRequested, ProductUpserted
from shopstream.kafka_io import publish_events
from shopstream.settings import KafkaSettings
from shopstream.topics import dead_letter_topic
from shopstream_describer.app import build_service
from support.describer import bilingual_products, composer_settings
from support.kafka import collect, unique

pytestmark = pytest.mark.integration


async def test_products_get_described_unchanged_are_skipped_and_poison_is_dead_lettered(
    kafka_bootstrap: str,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    settings = composer_settings(kafka, unique("it.describer"))
    topics = settings.topics
    first = bilingual_products("it-shop")
    service = build_service(settings)
    await service.start()
    try:
        await publish_events(kafka, topics.products, first)
        described = await collect(kafka, topics.descriptions, 2, within=60)
        request = CopyRequested(
            tenant_id="it-shop",
            payload={
                "campaign_id": "spring",
                "product_ids": ["bag-1"],
                "channel": "sms",
                "variants": 2,
            },
        )
        await publish_events(kafka, topics.copy_requests, [request])
        copies = await collect(kafka, topics.copies, 1, within=60)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topics.products, b"{not json", key=b"it-shop:bad")
        finally:
            await producer.stop()
        dead = await collect(kafka, dead_letter_topic(topics.products), 1, within=60)
    finally:
        await service.stop()

    by_product = {d["payload"]["product_id"]: d["payload"] for d in described}
    assert set(by_product) == {"bag-1", "skirt-1"}
    for payload in by_product.values():
        quality = payload["quality"]
        assert quality["path"] == "composed"
        assert quality["unsupported_claims"] == []
        assert quality["compliance_findings"] == []
        assert quality["attribute_coverage"] == 1.0
        assert quality["review_required"] is False
        assert payload["content_hash"].startswith("sha256:")
    assert "Navy" in by_product["bag-1"]["description"]
    assert "针织" in by_product["skirt-1"]["description"]
    assert [len(c["payload"]["variants"]) for c in copies] == [2]
    assert dead[0]["payload"]["reason"] == "invalid_json"

    # A restarted replica rebuilds the hashes from the compacted topic: the same products,
    # re-sent as new events, produce nothing new; a changed one is described again.
    restarted = build_service(settings)
    await restarted.start()
    try:
        changed = ProductUpserted(
            tenant_id="it-shop",
            payload={
                "product_id": "bag-1",
                "title": "Canvas Tote Bag",
                "brand": "Acme",
                "attributes": {"colour": "Olive", "material": "Canvas"},
                "target_locales": ["en"],
            },
        )
        resent = [
            event.model_copy(update={"event_id": event.event_id.__class__(int=i + 1)})
            for i, event in enumerate(bilingual_products("it-shop"))
        ]
        await publish_events(kafka, topics.products, [*resent, changed])
        await asyncio.sleep(1)
        after = await collect(kafka, topics.descriptions, 3, within=30)
    finally:
        await restarted.stop()
    assert len(after) == 3, "only the changed product was described again"
    assert "Olive" in after[-1]["payload"]["description"]
