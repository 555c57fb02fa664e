"""Topic readers (`shopstream.runtime.tables`), message keys and the products-topic parser, on a
fake consumer: no broker needed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import (
    KafkaConnectionError,
    LeaderNotAvailableError,
    NotLeaderForPartitionError,
)

from shopstream.events import (
    KnowledgeUpserted,
    ProductDeleted,
    ProductUpserted,
    parse_key,
    parse_product_record,
)
from shopstream.runtime import tables
from shopstream.settings import KafkaSettings

pytestmark = pytest.mark.unit

TOPIC = "shop.catalog.products"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


def record(
    tp: TopicPartition, offset: int, value: bytes | None = b"{}"
) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=f"shop:p{offset}".encode(),
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=[],
    )


class FakeCluster:
    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return {0, 1} if topic == TOPIC else None


class FakeClient:
    async def fetch_all_metadata(self) -> FakeCluster:
        return FakeCluster()


class FakeConsumer:
    """A consumer over an in-memory log per partition whose first offset requests fail the way
    a topic created a moment ago answers them."""

    log: ClassVar[dict[TopicPartition, list[ConsumerRecord[Any, Any]]]] = {}
    leaderless_answers: ClassVar[list[Exception]] = []
    instances: ClassVar[list[FakeConsumer]] = []

    def __init__(self, **_: Any) -> None:
        self._client = FakeClient()
        self.positions: dict[TopicPartition, int] = {}
        self.assigned: list[TopicPartition] = []
        self.stopped = False
        FakeConsumer.instances.append(self)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self.assigned = list(partitions)

    def _answer(self) -> None:
        if FakeConsumer.leaderless_answers:
            raise FakeConsumer.leaderless_answers.pop(0)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self._answer()
        return {tp: len(self.log.get(tp, [])) for tp in partitions}

    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        self._answer()
        return dict.fromkeys(partitions, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
        batches = {}
        for tp in partitions or self.assigned:
            records = self.log.get(tp, [])[self.positions[tp] : self.positions[tp] + 2]
            if records:
                batches[tp] = records
                self.positions[tp] += len(records)
        if not batches:
            await asyncio.sleep(timeout_ms / 1000)
        return batches


@pytest.fixture
def fake_consumer(monkeypatch: pytest.MonkeyPatch) -> type[FakeConsumer]:
    FakeConsumer.log = {P0: [record(P0, i) for i in range(5)], P1: [record(P1, 0)]}
    FakeConsumer.leaderless_answers = []
    FakeConsumer.instances = []
    monkeypatch.setattr(tables, "AIOKafkaConsumer", FakeConsumer)
    return FakeConsumer


def test_parse_key_splits_tenant_from_entity_at_the_first_colon() -> None:
    assert parse_key(b"shop:p1") == ("shop", "p1")
    assert parse_key(b"shop:p1:de") == ("shop", "p1:de"), "entity ids may hold colons"
    for malformed in (None, b"", b"no-colon", b":p1", b"shop:"):
        assert parse_key(malformed) is None
    product = ProductUpserted(tenant_id="shop", payload={"product_id": "a:b", "title": "T"})
    assert parse_key(product.message_key().encode()) == ("shop", "a:b")


def test_the_products_parser_reads_upserts_deletions_and_tombstones() -> None:
    product = ProductUpserted(tenant_id="shop", payload={"product_id": "p1", "title": "Kettle"})
    upserted = parse_product_record(b"shop:p1", product.to_json())
    assert upserted is not None
    assert (upserted.tenant_id, upserted.product_id) == ("shop", "p1")
    assert upserted.product == product.payload

    deleted = ProductDeleted(tenant_id="shop", payload={"product_id": "p1"})
    change = parse_product_record(b"shop:p1", deleted.to_json())
    assert change is not None
    assert change.product is None
    tombstone = parse_product_record(b"shop:p2", None)
    assert tombstone is not None
    assert (tombstone.tenant_id, tombstone.product_id, tombstone.product) == ("shop", "p2", None)

    knowledge = KnowledgeUpserted(
        tenant_id="shop", payload={"doc_id": "d", "title": "t", "body": "b"}
    )
    for key, value in (
        (b"garbage", None),
        (b"shop:p1", b"{not json"),
        (b"shop:d", knowledge.to_json()),
    ):
        assert parse_product_record(key, value) is None


async def test_while_leaderless_asks_again_until_the_leader_answers() -> None:
    answers: list[Exception] = [NotLeaderForPartitionError(), LeaderNotAvailableError()]

    async def call() -> str:
        if answers:
            raise answers.pop(0)
        return "ends"

    assert await tables.while_leaderless(call, limit_seconds=5) == "ends"
    assert not answers


async def test_while_leaderless_gives_up_after_its_limit_and_passes_other_errors() -> None:
    calls = 0

    async def leaderless() -> None:
        nonlocal calls
        calls += 1
        raise NotLeaderForPartitionError()

    with pytest.raises(NotLeaderForPartitionError):
        await tables.while_leaderless(leaderless, limit_seconds=0.3)
    assert 1 < calls < 10

    async def unreachable() -> None:
        raise KafkaConnectionError()

    with pytest.raises(KafkaConnectionError):
        await tables.while_leaderless(unreachable, limit_seconds=5)


async def test_the_follower_rides_out_a_new_topic_without_leaders_and_catches_up(
    fake_consumer: type[FakeConsumer],
) -> None:
    fake_consumer.leaderless_answers = [NotLeaderForPartitionError(), LeaderNotAvailableError()]
    applied: list[tuple[int, int]] = []

    async def apply(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        applied.extend((r.partition, r.offset) for r in records)

    follower = tables.TopicFollower(KafkaSettings(), [TOPIC], apply, name="test", max_records=2)
    await follower.start()
    try:
        assert not fake_consumer.leaderless_answers, "both leaderless answers were asked again"
        await follower.wait_caught_up(5)
        assert sorted(applied) == [(0, i) for i in range(5)] + [(1, 0)]
        fake_consumer.log[P1].append(record(P1, 1))
        assert await follower.sync(5), "read-your-writes reaches the new end"
        assert (1, 1) in applied
    finally:
        await follower.stop()
    assert fake_consumer.instances[0].stopped


async def test_a_follower_whose_leaders_never_answer_fails_to_start(
    fake_consumer: type[FakeConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables, "LEADER_WAIT_SECONDS", 0.3)
    fake_consumer.leaderless_answers = [NotLeaderForPartitionError() for _ in range(100)]

    async def apply(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        raise AssertionError("nothing to apply")

    follower = tables.TopicFollower(KafkaSettings(), [TOPIC], apply, name="test")
    with pytest.raises(NotLeaderForPartitionError):
        await follower.start()
    assert fake_consumer.instances[0].stopped, "a failed start closes its consumer"


async def test_replay_ranges_yields_exactly_the_offsets_asked_for(
    fake_consumer: type[FakeConsumer],
) -> None:
    ranges = {P0: (1, 4), P1: (0, 0)}
    replayed = [
        (r.partition, r.offset) async for r in tables.replay_ranges(KafkaSettings(), ranges)
    ]
    assert replayed == [(0, 1), (0, 2), (0, 3)]
    assert fake_consumer.instances[0].assigned == [P0], "empty ranges are not read"
    assert [r async for r in tables.replay_ranges(KafkaSettings(), {P1: (1, 1)})] == []
    assert len(fake_consumer.instances) == 1, "nothing to replay opens no consumer"


async def test_a_topic_tail_reads_only_what_was_added_since_its_last_step(
    fake_consumer: type[FakeConsumer],
) -> None:
    tail = tables.TopicTail(KafkaSettings(), TOPIC)
    first = [(partition, key) async for partition, key, _ in tail.catch_up(5)]
    assert len(first) == 6
    fake_consumer.log[P0].append(record(P0, 5, None))
    second = [(partition, key, value) async for partition, key, value in tail.catch_up(5)]
    assert second == [(0, b"shop:p5", None)], "a tombstone arrives with its key and no value"
    assert tail.positions == {0: 6, 1: 1}


async def test_a_reader_from_now_skips_what_was_published_before_it_started(
    fake_consumer: type[FakeConsumer],
) -> None:
    reader = tables.TopicReader(KafkaSettings(), TOPIC, from_beginning=False)
    await reader.start()
    try:
        fake_consumer.log[P1].append(record(P1, 1))
        assert [(r.partition, r.offset) for r in await reader.poll()] == [(1, 1)]
    finally:
        await reader.stop()
    seen = [
        value
        async for _key, value, _ in tables.read_topic(KafkaSettings(), TOPIC, idle_timeout=0.3)
    ]
    assert len(seen) == 7
