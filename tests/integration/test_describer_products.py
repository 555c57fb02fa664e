"""The describer's product table on a real broker: every replica holds every product, and a
deleted product (event or compaction tombstone) is forgotten, also across a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from shopstream.events import CopyRequested, ProductDeleted, ProductUpserted
from shopstream.kafka_io import end_offsets, publish_events
from shopstream.runtime.admin import ensure_topics
from shopstream.settings import KafkaSettings
from shopstream.topics import dead_letter_topic
from shopstream_describer.app import ProductTable, build_service
from support.describer import composer_settings
from support.kafka import collect, unique

pytestmark = pytest.mark.integration

TENANT = "it-shop"


def partition_of(key: str) -> int:
    return int(DefaultPartitioner()(key.encode(), [0, 1], [0, 1]))


def tote(product_id: str) -> ProductUpserted:
    return ProductUpserted(
        tenant_id=TENANT,
        payload={
            "product_id": product_id,
            "title": "Canvas Tote Bag",
            "attributes": {"colour": "Navy", "material": "Canvas"},
        },
    )


def copy_request(campaign_id: str, product_id: str) -> CopyRequested:
    return CopyRequested(
        tenant_id=TENANT,
        payload={"campaign_id": campaign_id, "product_ids": [product_id], "channel": "sms"},
    )


async def eventually(condition: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


async def partitions_led(kafka: KafkaSettings, topic: str, within: float = 30.0) -> None:
    """Wait until every partition of a new topic answers a ListOffsets: a table follower
    started before that met NotLeaderForPartitionError and missed a product (clean-clone CI)."""
    deadline = time.monotonic() + within
    while True:
        try:
            await end_offsets(kafka, [topic])
        except KafkaError:
            assert time.monotonic() < deadline, f"{topic} has partitions without a leader"
            await asyncio.sleep(0.2)
        else:
            return


async def test_every_replica_holds_every_product_and_forgets_deleted_ones(
    kafka_bootstrap: str,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    settings = composer_settings(kafka, unique("it.describer-table"))
    topics = settings.topics
    # Keys on different partitions: with two replicas, the one that consumes the campaign does
    # not consume the product's partition, so only the product table can know the product.
    assert partition_of(f"{TENANT}:p0") != partition_of(f"{TENANT}:c2")
    assert partition_of(f"{TENANT}:p2") != partition_of(f"{TENANT}:p0")
    # Topics first: a table follower that starts while its topic's partitions still have no
    # leader waits for a metadata refresh (a CI run timed out on that).
    await ensure_topics(kafka, topics.specs())
    await partitions_led(kafka, topics.products)
    replicas = [build_service(settings), build_service(settings)]
    for replica in replicas:
        await replica.start()
    try:
        await publish_events(kafka, topics.products, [tote("p0"), tote("p2")])
        await collect(kafka, topics.descriptions, 2, within=60)
        for replica in replicas:
            await eventually(lambda r=replica: len(r.component(ProductTable).state.products) == 2)  # type: ignore[misc]
        await publish_events(kafka, topics.copy_requests, [copy_request("c2", "p0")])
        copies = await collect(kafka, topics.copies, 1, within=60)
        assert copies[0]["payload"]["campaign_id"] == "c2"

        # A deletion event for one product, a compaction tombstone for the other.
        await publish_events(
            kafka,
            topics.products,
            [ProductDeleted(tenant_id=TENANT, payload={"product_id": "p0"})],
        )
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topics.products, None, key=f"{TENANT}:p2".encode())
        finally:
            await producer.stop()
        for replica in replicas:
            state = replica.component(ProductTable).state
            await eventually(lambda s=state: not s.products and not s.hashes)  # type: ignore[misc]
        await publish_events(kafka, topics.copy_requests, [copy_request("c1", "p0")])
        dead = await collect(kafka, dead_letter_topic(topics.copy_requests), 1, within=60)
        assert "unknown products" in dead[0]["payload"]["error_message"]
        # The deletion event withdrew p0's description from the compacted topic; the products
        # topic's tombstone is no event, so it is skipped, not dead-lettered.
        published = await collect(kafka, topics.descriptions, 10**6, within=5, tombstones=True)
        withdrawn = [d["_tombstone"] for d in published if "_tombstone" in d]
        p0_locales = {
            d["payload"]["locale"]
            for d in published
            if d.get("payload", {}).get("product_id") == "p0"
        }
        assert sorted(withdrawn) == sorted(f"{TENANT}:p0:{locale}" for locale in p0_locales)
        assert withdrawn
        assert await collect(kafka, dead_letter_topic(topics.products), 1, within=3) == []
    finally:
        for replica in replicas:
            await replica.stop()

    # A restarted replica reads the deleted product's old descriptions from the compacted topic
    # but keeps no hash for them: the product, back unchanged, is described again.
    restarted = build_service(settings)
    await restarted.start()
    try:
        assert restarted.component(ProductTable).state.hashes == {}
        await publish_events(kafka, topics.products, [tote("p0")])
        described = await collect(kafka, topics.descriptions, 3, within=60)
    finally:
        await restarted.stop()
    assert [d["payload"]["product_id"] for d in described].count("p0") == 2
