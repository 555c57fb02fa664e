"""Fakes and event builders shared by the recommender's unit and integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry

from shopstream.events import ActivityRecorded, ProductUpserted, RecommendationsRequested
from shopstream_recommender.app import RecommenderCore, build_service
from shopstream_recommender.config import RecommenderSettings
from shopstream_recommender.ranking import Ranker
from shopstream_recommender.state import Interaction


class FakeEmbedder:
    """Bag-of-words vectors over a tiny vocabulary: similar titles get similar vectors."""

    model_id = "fake-encoder"
    model_revision = "fake-1"
    vocabulary = ("dress", "red", "blue", "drill", "kettle", "tea")

    def __init__(self) -> None:
        self.batches: list[int] = []

    def load(self) -> None:
        return None

    def unload(self) -> None:
        return None

    def predict_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.batches.append(len(texts))
        rows = [[float(word in text.lower()) for word in self.vocabulary] for text in texts]
        return np.array(rows, dtype=np.float32) + 0.01


def fed_service(events: Iterable[Interaction]) -> tuple[CollectorRegistry, Ranker]:
    """A recommender service (not started) whose ranker has applied `events`: its metrics
    registry and its ranker."""
    service = build_service(
        RecommenderSettings(create_topics=False, http_port=0), embedder=FakeEmbedder()
    )
    ranker = service.component(RecommenderCore).ranker
    for event in events:
        ranker.record(event)
    return service.registry, ranker


def activity(
    user: str, product: str | None, kind: str = "view", tenant: str = "shop-a", **payload: Any
) -> ActivityRecorded:
    return ActivityRecorded(
        tenant_id=tenant,
        payload={"user_id": user, "kind": kind, "product_id": product} | payload,
    )


def request(user: str, tenant: str = "shop-a", **payload: Any) -> RecommendationsRequested:
    return RecommendationsRequested(
        tenant_id=tenant,
        payload={"user_id": user, "request_id": f"req-{uuid.uuid4().hex[:6]}"} | payload,
    )


def upsert(product: str, title: str, tenant: str = "shop-a", **payload: Any) -> ProductUpserted:
    return ProductUpserted(
        tenant_id=tenant, payload={"product_id": product, "title": title} | payload
    )
