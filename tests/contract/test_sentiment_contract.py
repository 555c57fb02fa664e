"""The sentiment service under the service contract, on a keyword model (no weights)."""

from __future__ import annotations

import json
import uuid
from typing import cast

from contract.base import (
    AnyService,
    Rejected,
    StatefulServiceContract,
    common_settings,
)
from shopstream.events import Event, ReviewSubmitted
from shopstream.kafka_io import publish_events
from shopstream.settings import KafkaSettings, ServiceSettings
from shopstream_sentiment.app import build_service
from shopstream_sentiment.config import SentimentSettings
from support.kafka import collect, prefixed_topics
from support.sentiment import KeywordModel

TENANT = "contract-shop"


def review(text: str, product: str = "kettle") -> ReviewSubmitted:
    return ReviewSubmitted(
        tenant_id=TENANT,
        payload={"review_id": f"r-{uuid.uuid4().hex[:8]}", "product_id": product, "text": text},
    )


class TestSentimentContract(StatefulServiceContract):
    name = "sentiment"
    input = "reviews"
    output = "sentiment"

    def settings(self, kafka: KafkaSettings, prefix: str) -> ServiceSettings:
        return SentimentSettings(
            topics=prefixed_topics(prefix, "reviews", "sentiment", "insights"),
            **common_settings(kafka, prefix),
        )

    def build(self, settings: ServiceSettings) -> AnyService:
        return build_service(cast("SentimentSettings", settings), model=KeywordModel())

    def valid_event(self, index: int) -> Event:
        return review(f"lovely kettle {index}", product=f"p{index}")

    def rejected(self, settings: ServiceSettings) -> Rejected:
        empty = json.loads(review("x").to_json())
        empty["payload"]["text"] = ""
        return Rejected(json.dumps(empty).encode(), "schema_violation")

    # The insights of every product are rebuilt from the compacted insights topic on start.

    async def seed_state(self, service: AnyService, settings: ServiceSettings) -> None:
        kafka, topics = settings.kafka, settings.topics
        await publish_events(kafka, topics.reviews, [review("broken on day one")])
        (insights,) = await collect(kafka, topics.insights, 1, within=30)
        assert insights["payload"]["review_count"] == 1

    async def check_state_restored(self, service: AnyService, settings: ServiceSettings) -> None:
        kafka, topics = settings.kafka, settings.topics
        await publish_events(kafka, topics.reviews, [review("works fine now")])
        first, second = await collect(kafka, topics.insights, 2, within=30)
        assert second["payload"]["product_id"] == first["payload"]["product_id"]
        assert second["payload"]["review_count"] == 2, "the count went on from the topic's"
