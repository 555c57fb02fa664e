"""The sentiment service on a real broker with the real model: results, dead letters, restarts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from shopstream.events import ReviewSubmitted
from shopstream.kafka_io import publish_events
from shopstream.runtime.admin import ensure_topics
from shopstream.settings import BatchSettings, KafkaSettings
from shopstream.topics import TopicSettings, dead_letter_topic
from shopstream_sentiment.app import build_service
from shopstream_sentiment.config import SentimentSettings
from shopstream_sentiment.predictions import ReviewText, SentimentPrediction
from shopstream_sentiment.samples import sample_reviews, sample_rows
from support.kafka import collect, prefixed_topics, unique

pytestmark = pytest.mark.integration

PARTITIONS = 3


class SharedModel:
    """The real model, loaded once for the module; services' load/unload leave it alone."""

    def __init__(self, model: Any) -> None:
        self._model = model

    @property
    def model_id(self) -> str:
        return str(self._model.model_id)

    @property
    def model_revision(self) -> str:
        return str(self._model.model_revision)

    def load(self) -> None:
        return None

    def unload(self) -> None:
        return None

    def predict_batch(self, inputs: Sequence[ReviewText]) -> list[SentimentPrediction]:
        return list(self._model.predict_batch(inputs))


@pytest.fixture(scope="module")
def shared_model() -> Iterator[SharedModel]:
    from shopstream_sentiment.model import SentimentModel  # noqa: PLC0415 - loads torch

    model = SentimentModel(SentimentSettings().model)
    model.load()
    try:
        yield SharedModel(model)
    finally:
        model.unload()


def topics_for(prefix: str) -> TopicSettings:
    return prefixed_topics(prefix, "reviews", "sentiment", "insights", partitions=PARTITIONS)


def settings_for(
    kafka: KafkaSettings, topics: TopicSettings, **overrides: Any
) -> SentimentSettings:
    return SentimentSettings(
        kafka=kafka,
        topics=topics,
        group_id=topics.reviews + ".group",
        http_port=0,
        **overrides,
    )


def reviews(count: int, tenant: str, products: int = 10) -> list[ReviewSubmitted]:
    texts = [(row["text"], row["locale"]) for row in sample_rows()]
    return [
        ReviewSubmitted(
            tenant_id=tenant,
            payload={
                "review_id": f"r{index}",
                "product_id": f"p{index % products}",
                "text": texts[index % len(texts)][0],
                "locale": texts[index % len(texts)][1],
            },
        )
        for index in range(count)
    ]


def latest_insights(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last insights per product in offset order: what compaction will leave."""
    return {document["payload"]["product_id"]: document for document in documents}


async def collect_until(
    kafka: KafkaSettings, topic: str, wanted: set[str], max_seconds: float
) -> list[dict[str, Any]]:
    """Re-read `topic` until every id in `wanted` appears as a causation id."""
    deadline = time.monotonic() + max_seconds
    results: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        results = await collect(kafka, topic, 10**9, within=3)
        if {r["causation_id"] for r in results} >= wanted:
            break
        await asyncio.sleep(1)
    return results


def assert_one_id_per_input(results: list[dict[str, Any]], events: list[ReviewSubmitted]) -> None:
    by_input: dict[str, set[str]] = {}
    for result in results:
        by_input.setdefault(result["causation_id"], set()).add(result["event_id"])
    assert set(by_input) == {str(e.event_id) for e in events}, "every input has a result"
    assert all(len(ids) == 1 for ids in by_input.values()), "duplicates carry the same id"


async def test_sample_shop_reviews_become_scores_and_insights(
    kafka_bootstrap: str, shared_model: SharedModel
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topics = topics_for(unique("it.sentiment"))
    events = sample_reviews("it-shop")
    service = build_service(settings_for(kafka, topics), model=shared_model)
    await service.start()
    try:
        await publish_events(kafka, topics.reviews, events)
        scored = await collect(kafka, topics.sentiment, len(events), within=180)
        insights = await collect(kafka, topics.insights, 10**9, within=5)
    finally:
        await service.stop()
    assert_one_id_per_input(scored, events)
    by_cause = {s["causation_id"]: s for s in scored}
    agree = rated = 0
    for event in events:
        result = by_cause[str(event.event_id)]
        assert result["_headers"]["event_type"] == "review.scored"
        assert result["_headers"]["model_revision"] == shared_model.model_revision
        assert result["payload"]["review_id"] == event.payload.review_id
        rating = event.payload.rating
        if rating is not None and rating != 3:
            rated += 1
            agree += result["payload"]["label"] == ("positive" if rating > 3 else "negative")
    assert agree / rated >= 0.75, f"labels agree with clear star ratings on {agree}/{rated}"
    latest = latest_insights(insights)
    expected = Counter(event.payload.product_id for event in events)
    assert {p: d["payload"]["review_count"] for p, d in latest.items()} == dict(expected)
    kettle = latest["kettle-1.7l"]["payload"]
    assert kettle["alert"], "the leaking kettle's recent reviews raise the alert"
    assert kettle["trend"] > 0.15
    assert [w["window"] for w in kettle["windows"]] == ["7d", "30d", "all"]
    assert not latest["phone-case-slim"]["payload"]["alert"]


async def test_poison_records_are_dead_lettered_while_good_reviews_are_scored(
    kafka_bootstrap: str, shared_model: SharedModel
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topics = topics_for(unique("it.sentiment-poison"))
    good = reviews(20, "it-shop")
    missing_tenant = json.loads(good[0].to_json())
    del missing_tenant["tenant_id"]
    schema_violation = json.loads(good[1].to_json())
    schema_violation["payload"]["rating"] = "five stars"
    poison = [
        (b"{not json", "invalid_json"),
        (json.dumps(missing_tenant).encode(), "missing_tenant"),
        (json.dumps(schema_violation).encode(), "schema_violation"),
    ]
    service = build_service(settings_for(kafka, topics), model=shared_model)
    await service.start()
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for index, event in enumerate(good):
                await producer.send(topics.reviews, event.to_json(), key=b"it-shop:p%d" % index)
                if index % 6 == 0 and index // 6 < len(poison):
                    await producer.send(topics.reviews, poison[index // 6][0], key=b"poison")
            await producer.flush()
        finally:
            await producer.stop()
        scored = await collect(kafka, topics.sentiment, len(good), within=120)
        dead = await collect(kafka, dead_letter_topic(topics.reviews), len(poison), within=30)
    finally:
        await service.stop()
    assert_one_id_per_input(scored, good)
    assert sorted(d["payload"]["reason"] for d in dead) == sorted(r for _, r in poison)
    assert all(d["payload"]["service"] == "sentiment" for d in dead)
    assert all(d["payload"]["original_topic"] == topics.reviews for d in dead)


async def test_restart_mid_stream_resumes_the_insights_from_the_topic(
    kafka_bootstrap: str, shared_model: SharedModel
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topics = topics_for(unique("it.sentiment-restart"))
    settings = settings_for(kafka, topics, batch=BatchSettings(max_records=16))
    events = reviews(240, "it-shop")
    await ensure_topics(kafka, topics.specs())
    await publish_events(kafka, topics.reviews, events)
    first = build_service(settings, model=shared_model)
    await first.start()
    try:
        partial = await collect(kafka, topics.sentiment, 60, within=120)
    finally:
        await first.stop()
    assert len(partial) >= 60
    after_first = len(await collect(kafka, topics.sentiment, len(events), within=3))
    assert after_first < len(events), "the stop should have happened mid-stream"
    before = latest_insights(await collect(kafka, topics.insights, 10**9, within=3))

    second = build_service(settings, model=shared_model)
    await second.start()
    try:
        restored = second.registry.get_sample_value("shopstream_sentiment_insight_products")
        assert restored == len(before), "every product's insights came back from the topic"
        wanted = {str(e.event_id) for e in events}
        scored = await collect_until(kafka, topics.sentiment, wanted, max_seconds=180)
    finally:
        await second.stop()
    assert_one_id_per_input(scored, events)
    insights = await collect(kafka, topics.insights, 10**9, within=3)
    counts = {p: d["payload"]["review_count"] for p, d in latest_insights(insights).items()}
    assert counts == {f"p{i}": 24 for i in range(10)}, "counts continued, none lost or doubled"


def start_process(kafka_bootstrap: str, topics: TopicSettings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SENTIMENT_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SENTIMENT_TOPICS__REVIEWS": topics.reviews,
        "SENTIMENT_TOPICS__SENTIMENT": topics.sentiment,
        "SENTIMENT_TOPICS__INSIGHTS": topics.insights,
        "SENTIMENT_TOPICS__PARTITIONS": str(PARTITIONS),
        "SENTIMENT_GROUP_ID": topics.reviews + ".group",
        "SENTIMENT_HTTP_PORT": "0",
        "SENTIMENT_BATCH__MAX_RECORDS": "16",
        "SENTIMENT_BATCH__SESSION_TIMEOUT_MS": "6000",
        "SENTIMENT_BATCH__HEARTBEAT_INTERVAL_MS": "1000",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "shopstream_sentiment"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(
    kafka_bootstrap: str,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topics = topics_for(unique("it.sentiment-crash"))
    events = reviews(300, "it-shop")
    await ensure_topics(kafka, topics.specs())
    await publish_events(kafka, topics.reviews, events)
    process = start_process(kafka_bootstrap, topics)
    try:
        first = await collect(kafka, topics.sentiment, 80, within=180)
        assert len(first) >= 80
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        partial = len(await collect(kafka, topics.sentiment, len(events), within=3))
        assert partial < len(events), "the crash should have happened mid-stream"
        process = start_process(kafka_bootstrap, topics)
        wanted = {str(e.event_id) for e in events}
        scored = await collect_until(kafka, topics.sentiment, wanted, max_seconds=240)
        # The last insights of the final batch are published with its scores; give them a beat.
        await asyncio.sleep(2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0, "SIGTERM drains and exits cleanly"
    assert_one_id_per_input(scored, events)
    insights = await collect(kafka, topics.insights, 10**9, within=3)
    counts = {p: d["payload"]["review_count"] for p, d in latest_insights(insights).items()}
    assert counts == {f"p{i}": 30 for i in range(10)}, "redelivered reviews are not recounted"


async def test_insights_of_partitions_handed_back_by_a_rebalance_are_caught_up(
    kafka_bootstrap: str, shared_model: SharedModel
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    topics = topics_for(unique("it.sentiment-handover"))
    fast_group = BatchSettings(max_records=16, session_timeout_ms=6_000, heartbeat_interval_ms=500)
    settings = settings_for(kafka, topics, batch=fast_group)
    rounds = [reviews(30, "it-shop"), reviews(30, "it-shop"), reviews(10, "it-shop")]
    first = build_service(settings, model=shared_model)
    await first.start()
    try:
        await publish_events(kafka, topics.reviews, rounds[0])
        await collect(kafka, topics.sentiment, 30, within=120)
        second = build_service(settings, model=shared_model)
        await second.start()
        try:
            deadline = time.monotonic() + 30
            while not (
                second.context.partitions.assigned
                and len(first.context.partitions.assigned) < PARTITIONS
            ):
                assert time.monotonic() < deadline, "the second replica took no partition"
                await asyncio.sleep(0.1)
            # Both replicas count this round, each for the products of its partitions.
            await publish_events(kafka, topics.reviews, rounds[1])
            await collect(kafka, topics.sentiment, 60, within=120)
        finally:
            await second.stop()
        deadline = time.monotonic() + 30
        while len(first.context.partitions.assigned) < PARTITIONS:
            assert time.monotonic() < deadline, "the partitions did not come back"
            await asyncio.sleep(0.1)
        await publish_events(kafka, topics.reviews, rounds[2])
        wanted = {str(e.event_id) for batch in rounds for e in batch}
        await collect_until(kafka, topics.sentiment, wanted, max_seconds=120)
    finally:
        await first.stop()
    insights = latest_insights(await collect(kafka, topics.insights, 10**9, within=3))
    counts = {product: d["payload"]["review_count"] for product, d in insights.items()}
    # Without the catch-up, the first replica would resume the second's products from its own
    # stale counts (3 + 1 instead of 3 + 3 + 1).
    assert counts == {f"p{i}": 7 for i in range(10)}
