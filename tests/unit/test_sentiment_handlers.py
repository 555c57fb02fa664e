"""The sentiment handler and service on fakes: mapping, ids, insights per product, dead letters."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker

from shopstream.events import (
    Polarity,
    ProductInsightsUpdated,
    ReviewScored,
    ReviewSubmitted,
    utc_now,
)
from shopstream.runtime.batch import Publication
from shopstream.runtime.service import BatchService
from shopstream.topics import TopicSettings, dead_letter_topic
from shopstream_sentiment.app import build_service, insight_rules
from shopstream_sentiment.config import SentimentSettings
from shopstream_sentiment.handlers import build_review_handler
from shopstream_sentiment.insights import InsightsBook
from shopstream_sentiment.predictions import AspectPrediction, ReviewText, SentimentPrediction
from support.memory import IN_MEMORY, sink

pytestmark = pytest.mark.unit

TOPICS = TopicSettings()


class FakeModel:
    """Keyword rules instead of a network; `EXPLODE` in a text fails the whole batch."""

    def __init__(self, revision: str = "fake-1") -> None:
        self.model_id = "fake-sentiment"
        self.model_revision = revision
        self.batches: list[int] = []
        self.extra_score = 0.0

    def load(self) -> None:
        return None

    def unload(self) -> None:
        return None

    def predict_batch(self, inputs: Sequence[ReviewText]) -> list[SentimentPrediction]:
        self.batches.append(len(inputs))
        if any("EXPLODE" in item.text for item in inputs):
            raise ValueError("the fake model cannot score this batch")
        return [self._predict(item) for item in inputs]

    def _predict(self, item: ReviewText) -> SentimentPrediction:
        if "leak" in item.text or "漏水" in item.text:
            aspect = AspectPrediction("quality", "negative", 0.04, item.text)
            return SentimentPrediction("negative", 0.05, 0.95, [aspect])
        if "meh" in item.text:
            return SentimentPrediction("neutral", 0.5, 0.6)
        # A calibrated score a rounding error above 1 must not cost the review its result.
        score = 0.97 + self.extra_score
        fast = AspectPrediction("delivery", "positive", 0.9, "fast delivery")
        return SentimentPrediction("positive", score, score, [fast])


def review(
    text: str = "great kettle, fast delivery",
    product: str = "kettle",
    tenant: str = "shop-a",
    **payload: Any,
) -> ReviewSubmitted:
    return ReviewSubmitted(
        tenant_id=tenant,
        payload={"review_id": f"r-{uuid.uuid4().hex[:6]}", "product_id": product, "text": text}
        | payload,
    )


def make_service(model: FakeModel | None = None, **settings: Any) -> BatchService[ReviewSubmitted]:
    return build_service(
        SentimentSettings(create_topics=False, http_port=0, kafka=IN_MEMORY, **settings),
        model=model or FakeModel(),
    )


def handler_for(model: FakeModel, book: InsightsBook | None = None) -> Any:
    service = make_service(model)
    return build_review_handler(
        service.context, model, book or InsightsBook(insight_rules(SentimentSettings())), TOPICS
    )


def split(publications: Sequence[Publication]) -> tuple[list[ReviewScored], list[Any]]:
    scored = [p.event for p in publications if p.topic == TOPICS.sentiment]
    insights = [p.event for p in publications if p.topic == TOPICS.insights]
    assert len(scored) + len(insights) == len(publications)
    assert all(isinstance(event, ReviewScored) for event in scored)
    assert all(isinstance(event, ProductInsightsUpdated) for event in insights)
    return scored, insights  # type: ignore[return-value]


async def test_each_review_is_scored_with_lineage_and_a_deterministic_id() -> None:
    model = FakeModel()
    handle = handler_for(model)
    events = [
        review(rating=5.0, locale="en"),
        review("水壶漏水了", locale="zh-CN", rating=1.0),
        review("meh", tenant="shop-b").model_copy(update={"correlation_id": "order-7"}),
    ]
    scored, _ = split(await handle(events))
    assert model.batches == [3], "one batched model call per batch"
    assert [s.causation_id for s in scored] == [e.event_id for e in events]
    first, leak, neutral = scored
    assert first.payload.label is Polarity.POSITIVE
    assert (first.payload.rating, first.payload.locale) == (5.0, "en")
    assert first.payload.review_id == events[0].payload.review_id
    assert first.payload.aspects[0].aspect == "delivery"
    assert leak.payload.label is Polarity.NEGATIVE
    assert leak.payload.aspects[0].snippet == "水壶漏水了"
    assert neutral.payload.label is Polarity.NEUTRAL
    assert neutral.tenant_id == "shop-b"
    assert neutral.correlation_id == "order-7"
    assert first.correlation_id == str(events[0].event_id)
    assert first.producer is not None
    assert first.producer.name == "sentiment"
    assert (first.lineage.model_id, first.lineage.model_revision) == ("fake-sentiment", "fake-1")
    assert first.message_key() == "shop-a:kettle"

    again, _ = split(await handler_for(FakeModel())(events))
    assert [s.event_id for s in again] == [s.event_id for s in scored], "replay keeps ids"
    other, _ = split(await handler_for(FakeModel(revision="fake-2"))(events))
    assert {s.event_id for s in other}.isdisjoint({s.event_id for s in scored})


async def test_probabilities_a_hair_outside_zero_one_are_clamped() -> None:
    model = FakeModel()
    model.extra_score = 1e-6 + 0.03
    scored, _ = split(await handler_for(model)([review()]))
    assert scored[0].payload.score == 1.0
    assert scored[0].payload.confidence == 1.0


async def test_one_insights_event_per_product_touched_after_the_batch() -> None:
    book = InsightsBook(insight_rules(SentimentSettings()))
    handle = handler_for(FakeModel(), book)
    kettle = [review(), review("it leaks"), review("leak again")]
    batch = [kettle[0], review(product="tea"), kettle[1], review(tenant="shop-b"), kettle[2]]
    _, insights = split(await handle(batch))
    by_product = {(e.tenant_id, e.payload.product_id): e for e in insights}
    assert list(by_product) == [("shop-a", "kettle"), ("shop-a", "tea"), ("shop-b", "kettle")]
    kettle_insights = by_product[("shop-a", "kettle")]
    assert kettle_insights.payload.review_count == 3
    assert kettle_insights.payload.mix.negative == 2
    assert kettle_insights.causation_id == kettle[-1].event_id, "caused by the product's last"
    assert kettle_insights.payload.pain_points[0].aspect == "quality"
    assert kettle_insights.payload.pain_points[0].mentions == 2
    assert kettle_insights.message_key() == "shop-a:kettle"
    assert by_product[("shop-b", "kettle")].payload.review_count == 1, "tenants never mix"

    _, later = split(await handle([review("meh")]))
    assert [e.payload.review_count for e in later] == [4], "counts continue across batches"


async def test_a_redelivered_batch_counts_nothing_twice_and_republishes_the_same_ids() -> None:
    book = InsightsBook(insight_rules(SentimentSettings()))
    handle = handler_for(FakeModel(), book)
    batch = [review(), review("leaks"), review(product="tea")]
    first = await handle(batch)
    second = await handle(batch)
    assert [p.event.event_id for p in second] == [p.event.event_id for p in first]
    _, insights = split(second)
    assert [e.payload.review_count for e in insights] == [2, 1]


async def test_a_failing_batch_leaves_the_insights_untouched() -> None:
    book = InsightsBook(insight_rules(SentimentSettings()))
    handle = handler_for(FakeModel(), book)
    with pytest.raises(ValueError, match="cannot score"):
        await handle([review(), review("EXPLODE")])
    assert book.get("shop-a", "kettle") is None


async def test_a_model_that_drops_predictions_fails_the_batch() -> None:
    model = FakeModel()
    model.predict_batch = lambda inputs: []  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="0 predictions for 1 reviews"):
        await handler_for(model)([review()])


async def test_windows_follow_the_reviews_occurred_at() -> None:
    handle = handler_for(FakeModel())
    old = review("it leaks").model_copy(update={"occurred_at": utc_now() - timedelta(days=20)})
    _, insights = split(await handle([old, review()]))
    windows = {w.window: w.mix for w in insights[0].payload.windows}
    assert (windows["7d"].positive, windows["7d"].negative) == (1, 0)
    assert (windows["30d"].positive, windows["30d"].negative) == (1, 1)


async def test_service_on_the_in_memory_broker_scores_and_dead_letters() -> None:
    service = make_service()
    received = {
        "scored": sink(service, TOPICS.sentiment),
        "insights": sink(service, TOPICS.insights),
        "dead": sink(service, dead_letter_topic(TOPICS.reviews)),
    }

    good = [review(), review("it leaks"), review(product="tea")]
    missing_tenant = json.loads(good[0].to_json())
    del missing_tenant["tenant_id"]
    async with TestKafkaBroker(service.broker):
        for event in good:
            await service.broker.publish(event.to_json(), TOPICS.reviews)
        await service.broker.publish(b"{not json", TOPICS.reviews)
        await service.broker.publish(json.dumps(missing_tenant).encode(), TOPICS.reviews)
        await service.broker.publish(review("EXPLODE").to_json(), TOPICS.reviews)
    assert [s["causation_id"] for s in received["scored"]] == [str(e.event_id) for e in good]
    assert [i["payload"]["review_count"] for i in received["insights"]] == [1, 2, 1]
    reasons = sorted(d["payload"]["reason"] for d in received["dead"])
    assert reasons == ["invalid_json", "missing_tenant", "processing_error"]
