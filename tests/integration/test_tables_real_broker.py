"""Topic readers (`shopstream.runtime.tables`) on a real broker, on topics created a moment
before they are read: the moment a new topic's partitions may still answer without a leader."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from shopstream.events import ProductChange, ProductDeleted, ProductUpserted, parse_product_record
from shopstream.kafka_io import publish_events
from shopstream.runtime.admin import ensure_topics
from shopstream.runtime.tables import TopicFollower, TopicTail, replay_ranges
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSpec
from support.kafka import unique

pytestmark = pytest.mark.integration

TENANT = "it-tables"


def product(product_id: str) -> ProductUpserted:
    return ProductUpserted(tenant_id=TENANT, payload={"product_id": product_id, "title": "Kettle"})


async def new_topic(kafka: KafkaSettings, compacted: bool) -> str:
    topic = unique("it.tables")
    await ensure_topics(kafka, [TopicSpec(topic, compacted, 3, 3_600_000, 1)])
    return topic


async def test_a_follower_started_on_a_brand_new_topic_holds_what_is_published(
    kafka_bootstrap: str,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topic = await new_topic(kafka, compacted=True)
    table: dict[str, ProductChange] = {}

    async def apply(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            change = parse_product_record(record.key, record.value)
            if change is not None:
                table[change.product_id] = change

    # No wait for leaders here: the follower asks again while the new partitions have none.
    follower = TopicFollower(kafka, [topic], apply, name="it-tables")
    await follower.start()
    try:
        await follower.wait_caught_up(30)
        await publish_events(
            kafka,
            topic,
            [
                product("p1"),
                product("p2"),
                ProductDeleted(tenant_id=TENANT, payload={"product_id": "p2"}),
            ],
        )
        assert await follower.sync(30)
        assert table["p1"].product is not None
        assert table["p2"].product is None, "the deletion came last"
    finally:
        await follower.stop()


async def test_a_tail_and_a_replay_read_the_same_records(kafka_bootstrap: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topic = await new_topic(kafka, compacted=False)
    await publish_events(kafka, topic, [product(f"p{i}") for i in range(12)])
    tail = TopicTail(kafka, topic)
    tailed = [key async for _partition, key, _value in tail.catch_up(30)]
    assert len(tailed) == 12
    assert [key async for _partition, key, _value in tail.catch_up(30)] == [], "nothing new"

    ranges = {TopicPartition(topic, p): (0, end) for p, end in tail.positions.items()}
    replayed = [record.key async for record in replay_ranges(kafka, ranges, max_seconds=30)]
    assert sorted(replayed, key=repr) == sorted(tailed, key=repr)
