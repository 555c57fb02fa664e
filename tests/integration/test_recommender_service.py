"""The recommender on a real broker: co-partitioned replicas, tenants, dead letters, restarts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from shopstream.kafka_io import publish_events
from shopstream.runtime.admin import ensure_topics
from shopstream.runtime.service import BatchService
from shopstream.settings import BatchSettings, KafkaSettings
from shopstream.topics import TopicSettings, dead_letter_topic
from shopstream_recommender.app import RecommenderCore, build_service
from shopstream_recommender.config import RecommenderSettings
from shopstream_recommender.handlers import RecommenderInput
from support.kafka import collect, prefixed_topics, unique
from support.recommender import FakeEmbedder, activity, request, upsert

pytestmark = pytest.mark.integration

PARTITIONS = 4


def topics_for(prefix: str) -> TopicSettings:
    names = ("products", "activity", "recs_requests", "recs_results")
    return prefixed_topics(prefix, *names, partitions=PARTITIONS)


def core(service: BatchService[RecommenderInput]) -> RecommenderCore:
    return service.component(RecommenderCore)


def service_for(kafka: KafkaSettings, topics: TopicSettings) -> BatchService[RecommenderInput]:
    settings = RecommenderSettings(
        kafka=kafka,
        topics=topics,
        group_id=topics.activity + ".group",
        http_port=0,
        batch=BatchSettings(max_records=256, session_timeout_ms=6_000, heartbeat_interval_ms=500),
    )
    return build_service(settings, embedder=FakeEmbedder())


async def wait_until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def browsing(tenant: str, users: int) -> list[Any]:
    """Each user i looks at `base{i % 3}` then `next{i % 3}`: three distinct tastes."""
    return [
        event
        for user in range(users)
        for event in (
            activity(f"user{user}", f"base{user % 3}", tenant=tenant),
            activity(f"user{user}", f"next{user % 3}", tenant=tenant),
        )
    ]


async def test_two_replicas_answer_each_shopper_from_their_own_activity(
    kafka_bootstrap: str,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topics = topics_for(unique("it.recs"))
    replicas = [service_for(kafka, topics), service_for(kafka, topics)]
    for replica in replicas:
        await replica.start()
    try:
        # Publish only once the group has split the partitions: on a busy machine the second
        # replica joins late, and the first would otherwise take every shopper's activity.
        await wait_until(
            lambda: all(r.context.partitions.assigned for r in replicas), 60, "both replicas"
        )
        catalogue = [upsert(f"next{i}", f"Item after {i}", tenant="shop-a") for i in range(3)]
        await publish_events(kafka, topics.products, catalogue)
        events = browsing("shop-a", 24) + browsing("shop-b", 6)
        await publish_events(kafka, topics.activity, events)
        await wait_until(
            lambda: sum(core(r).state.interactions for r in replicas) == len(events), 30, "activity"
        )
        assert all(core(r).state.interactions > 0 for r in replicas), "both replicas own partitions"
        # A new shopper per taste views a base item; its request must land on the replica that
        # saw that view: requests and activity are keyed alike on co-partitioned topics.
        fresh = [activity(f"new{i}", f"base{i}", tenant="shop-a") for i in range(3)]
        await publish_events(kafka, topics.activity, fresh)
        asks = [request(f"new{i}", count=3) for i in range(3)]
        asks.append(request("user0", tenant="shop-b", count=10))
        await publish_events(kafka, topics.recs_requests, asks)
        answers = await collect(kafka, topics.recs_results, len(asks), within=30)
    finally:
        for replica in replicas:
            await replica.stop()
    by_request = {a["payload"]["request_id"]: a for a in answers}
    for index, ask in enumerate(asks[:3]):
        payload = by_request[ask.payload.request_id]["payload"]
        assert not payload["cold_start"], "the replica answering holds the shopper's view"
        top = payload["items"][0]
        assert top["product_id"] == f"next{index}"
        assert top["reason"] == f"often viewed next after base{index}"
    other_shop = by_request[asks[3].payload.request_id]
    assert other_shop["tenant_id"] == "shop-b"
    shop_b_items = {item["product_id"] for item in other_shop["payload"]["items"]}
    assert shop_b_items <= {f"{kind}{i}" for kind in ("base", "next") for i in range(3)}
    assert all("Item after" not in item["reason"] for item in other_shop["payload"]["items"]), (
        "shop-a's catalogue titles never appear in shop-b's answers"
    )
    assert all(a["_headers"]["event_type"] == "recommendations.produced" for a in answers)


async def test_poison_records_are_dead_lettered_and_the_rest_answered(
    kafka_bootstrap: str,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topics = topics_for(unique("it.recs-poison"))
    service = service_for(kafka, topics)
    await service.start()
    try:
        events = browsing("shop-a", 6)
        missing_tenant = json.loads(events[0].to_json())
        del missing_tenant["tenant_id"]
        bad_request = json.loads(request("user0").to_json())
        bad_request["payload"]["count"] = 1_000
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send(topics.activity, b"{not json", key=b"shop-a:user0")
            await producer.send(topics.activity, json.dumps(missing_tenant).encode())
            await producer.send(topics.recs_requests, json.dumps(bad_request).encode())
            await producer.flush()
        finally:
            await producer.stop()
        await publish_events(kafka, topics.activity, events)
        await wait_until(lambda: core(service).state.interactions == len(events), 30, "activity")
        ask = request("user0")
        await publish_events(kafka, topics.recs_requests, [ask])
        answers = await collect(kafka, topics.recs_results, 1, within=30)
        dead_activity = await collect(kafka, dead_letter_topic(topics.activity), 2, within=15)
        dead_requests = await collect(kafka, dead_letter_topic(topics.recs_requests), 1, within=15)
    finally:
        await service.stop()
    assert [a["payload"]["request_id"] for a in answers] == [ask.payload.request_id]
    assert sorted(d["payload"]["reason"] for d in dead_activity) == [
        "invalid_json",
        "missing_tenant",
    ]
    assert [d["payload"]["reason"] for d in dead_requests] == ["schema_violation"]
    assert all(d["payload"]["service"] == "recommender" for d in dead_activity + dead_requests)


async def test_a_restarted_replica_rebuilds_its_state_by_replaying_activity(
    kafka_bootstrap: str,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topics = topics_for(unique("it.recs-restart"))
    events = browsing("shop-a", 600)
    first = service_for(kafka, topics)
    await first.start()
    try:
        await publish_events(kafka, topics.products, [upsert("next1", "Kettle 1.7 l")])
        await publish_events(kafka, topics.activity, events)
        await wait_until(lambda: core(first).state.interactions == len(events), 60, "activity")
        before = core(first).state.memory()
    finally:
        await first.stop()

    second = service_for(kafka, topics)
    started = time.perf_counter()
    await second.start()
    ready_seconds = time.perf_counter() - started
    try:
        replay = core(second).replay
        assert replay is not None
        assert replay.applied == len(events), "everything committed was replayed"
        after = core(second).state.memory()
        assert (after.users, after.history_entries, after.neighbour_edges) == (
            before.users,
            before.history_entries,
            before.neighbour_edges,
        ), "the same state, not an approximation"
        assert core(second).state.tenant("shop-a").catalogue["next1"].title == "Kettle 1.7 l"
        # A later visit (its own session): the session so far would otherwise be base1, next1
        # and base2, whose neighbour sessions (base1, next1) are every other shopper's too.
        late = [activity("user1", "base2", session_id="later")]
        await publish_events(kafka, topics.activity, late)
        await wait_until(
            lambda: core(second).state.interactions == len(events) + 1, 30, "new event"
        )
        ask = request("user1", count=5)
        await publish_events(kafka, topics.recs_requests, [ask])
        (answer,) = await collect(kafka, topics.recs_results, 1, within=30)
    finally:
        await second.stop()
    assert core(second).state.interactions == len(events) + 1, "nothing applied twice"
    items = [item["product_id"] for item in answer["payload"]["items"]]
    assert items[0] == "next2", "the new view counts, on top of the replayed history"
    reasons = {item["reason"] for item in answer["payload"]["items"]}
    assert any("Kettle 1.7 l" in reason for reason in reasons), "titles from the restored catalogue"
    print(
        f"\nrecovery: replayed {replay.applied} events in {replay.seconds:.2f} s;"
        f" start to ready {ready_seconds:.2f} s"
    )


async def test_partitions_handed_back_by_a_rebalance_arrive_with_their_recent_activity(
    kafka_bootstrap: str,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topics = topics_for(unique("it.recs-handover"))
    early = browsing("shop-a", 40)
    late = [activity(f"user{user}", "late", tenant="shop-a") for user in range(40)]
    first = service_for(kafka, topics)
    await first.start()
    try:
        await publish_events(kafka, topics.activity, early)
        await wait_until(lambda: core(first).state.interactions == len(early), 30, "early activity")
        second = service_for(kafka, topics)
        await second.start()
        try:
            await wait_until(
                lambda: (
                    bool(second.context.partitions.assigned)
                    and len(first.context.partitions.assigned) < 2 * PARTITIONS
                ),
                30,
                "the second replica to take partitions",
            )
            # While both run, the late views split between them: the first never sees the
            # ones on the second's partitions.
            await publish_events(kafka, topics.activity, late)
            total = len(early) + len(late)
            await wait_until(
                lambda: (
                    core(first).state.interactions + core(second).state.interactions
                    == total + len(early)
                ),  # the second replayed the early ones at start
                30,
                "late activity on both replicas",
            )
            missed = total - core(first).state.interactions
            assert missed > 0, "the second replica served some shoppers"
        finally:
            await second.stop()
        # The second replica left: the first owns everything again and must catch up.
        await wait_until(
            lambda: len(first.context.partitions.assigned) == 2 * PARTITIONS,
            30,
            "the partitions to come back",
        )
        # The tracker records an assignment before its listeners catch up with it (the next
        # batch waits for them); so must this check, or it races the replay.
        await asyncio.wait_for(first.context.partitions.settled(), 30)
        assert core(first).state.interactions == total, "caught up, nothing applied twice"
        catch_up = core(first).catch_up
        assert catch_up is not None
        assert catch_up.last is not None
        assert catch_up.last.applied == missed
        asks = [request(f"user{user}", count=5) for user in range(40)]
        await publish_events(kafka, topics.recs_requests, asks)
        answers = await collect(kafka, topics.recs_results, len(asks), within=30)
    finally:
        await first.stop()
    assert len(answers) == len(asks)
    for answer in answers:
        # The late view is every shopper's newest anchor wherever it was served.
        reasons = [item["reason"] for item in answer["payload"]["items"]]
        assert any("late" in reason for reason in reasons), reasons


async def test_a_replica_refuses_to_start_on_topics_that_are_not_co_partitioned(
    kafka_bootstrap: str,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topics = topics_for(unique("it.recs-mismatch"))
    await ensure_topics(
        kafka,
        [
            topics.spec(topics.activity),
            topics.model_copy(update={"partitions": PARTITIONS + 1}).spec(topics.recs_requests),
        ],
    )
    service = service_for(kafka, topics)
    with pytest.raises(RuntimeError, match="must be co-partitioned"):
        await service.start()
    await service.stop()
