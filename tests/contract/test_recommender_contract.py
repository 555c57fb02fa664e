"""The recommender under the service contract, on a bag-of-words item encoder (no weights)."""

from __future__ import annotations

from typing import cast

from contract.base import (
    AnyService,
    Rejected,
    StatefulServiceContract,
    common_settings,
    until_sample,
)
from shopstream.events import Event, ReviewSubmitted
from shopstream.kafka_io import publish_events
from shopstream.settings import KafkaSettings, ServiceSettings
from shopstream_recommender.app import build_service
from shopstream_recommender.config import RecommenderSettings
from support.kafka import collect, prefixed_topics
from support.recommender import FakeEmbedder, activity, request


class TestRecommenderContract(StatefulServiceContract):
    name = "recommender"
    input = "recs_requests"
    output = "recs_results"

    def settings(self, kafka: KafkaSettings, prefix: str) -> ServiceSettings:
        return RecommenderSettings(
            topics=prefixed_topics(prefix, "products", "activity", "recs_requests", "recs_results"),
            **common_settings(kafka, prefix),
        )

    def build(self, settings: ServiceSettings) -> AnyService:
        return build_service(cast("RecommenderSettings", settings), embedder=FakeEmbedder())

    def valid_event(self, index: int) -> Event:
        return request(f"shopper-{index}")

    def rejected(self, settings: ServiceSettings) -> Rejected:
        review = ReviewSubmitted(
            tenant_id="shop-a", payload={"review_id": "r", "product_id": "p", "text": "ok"}
        )
        return Rejected(review.to_json(), "unexpected_event_type")

    # Shoppers' histories are rebuilt by replaying the activity topic up to the group's
    # committed offsets on start.

    async def seed_state(self, service: AnyService, settings: ServiceSettings) -> None:
        browsing = [
            *(
                event
                for shopper in range(4)
                for event in (activity(f"u{shopper}", "kettle"), activity(f"u{shopper}", "teapot"))
            ),
            activity("me", "kettle"),
        ]
        await publish_events(settings.kafka, settings.topics.activity, browsing)
        shoppers = f"{self.metric_prefix}_state"
        await until_sample(service, shoppers, lambda users: users == 5, {"part": "users"})

    async def check_state_restored(self, service: AnyService, settings: ServiceSettings) -> None:
        kafka, topics = settings.kafka, settings.topics
        await publish_events(kafka, topics.recs_requests, [request("me")])
        (answer,) = await collect(kafka, topics.recs_results, 1, within=30)
        assert answer["payload"]["cold_start"] is False, "the shopper's history came back"
        assert answer["payload"]["items"][0]["product_id"] == "teapot"
