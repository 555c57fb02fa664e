"""The sentiment service: settings, model, insights state and handler wired onto the runtime."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry, Gauge

from shopstream.events import ReviewSubmitted
from shopstream.runtime.partitions import PartitionTracker
from shopstream.runtime.service import BatchService, ModelLifecycle
from shopstream.runtime.tables import TopicTail, partition_count
from shopstream_sentiment import __version__
from shopstream_sentiment.config import SentimentSettings
from shopstream_sentiment.handlers import SentimentPredictor, build_review_handler
from shopstream_sentiment.insights import InsightRules, InsightsBook
from shopstream_sentiment.spec import SPEC

logger = logging.getLogger("shopstream.sentiment")


class SentimentModelLike(SentimentPredictor, ModelLifecycle, Protocol):
    """What the service needs from a model: lifecycle plus batched prediction."""


def insight_rules(settings: SentimentSettings) -> InsightRules:
    return InsightRules.from_names(
        settings.insight_windows,
        alert_min_reviews=settings.alert_min_reviews,
        alert_jump=settings.alert_jump,
    )


class InsightsFollower:
    """The insights state's link to the compacted insights topic (a service component).

    At start every product's insights are read from the topic (`start`), so a replica holds
    them whichever partitions it gets. Later, a rebalance can hand this replica review
    partitions another replica worked on meanwhile: on each assignment (`on_assigned`), the
    records added to the topic since the last read are applied for the products of the review
    partitions it did not own before (a product's reviews and insights share the key, so the
    default partitioner places them alike). The runtime holds back the next batch until then.
    """

    def __init__(self, settings: SentimentSettings, book: InsightsBook, seconds: Gauge) -> None:
        self._settings = settings
        self._book = book
        self._seconds = seconds
        self._tail = TopicTail(settings.kafka, settings.topics.insights)
        self._owned: frozenset[int] = frozenset()
        self._partitioner = DefaultPartitioner()
        self.reloaded = 0
        """Insights records applied by catch-ups after rebalances (a figure for tests)."""

    async def start(self) -> None:
        started = time.perf_counter()
        applied, unusable = await self._apply(lambda _key: True)
        seconds = time.perf_counter() - started
        self._seconds.set(seconds)
        logger.info(
            "insights restored",
            extra={
                "records": applied,
                "unusable_records": unusable,
                "products": len(self._book),
                "seconds": round(seconds, 3),
            },
        )

    async def stop(self) -> None:
        return None  # each read opens and closes its own consumer

    async def on_assigned(
        self, assigned: frozenset[TopicPartition], tracker: PartitionTracker
    ) -> None:
        reviews = self._settings.topics.reviews
        owned = frozenset(tp.partition for tp in assigned if tp.topic == reviews)
        taken_over, self._owned = owned - self._owned, owned
        if not taken_over:
            return
        # The topic's real layout, which may differ from the settings' (it may predate them).
        everything = list(range(await partition_count(self._settings.kafka, reviews)))

        def handed_over(key: bytes | None) -> bool:
            return key is not None and self._partitioner(key, everything, []) in taken_over

        applied, _ = await self._apply(handed_over)
        self.reloaded += applied
        logger.info(
            "insights caught up with review partitions taken over",
            extra={"partitions": sorted(taken_over), "records": applied},
        )

    async def _apply(self, wanted: Callable[[bytes | None], bool]) -> tuple[int, int]:
        applied = unusable = 0
        try:
            async for _partition, key, value in self._tail.catch_up():
                if not wanted(key):
                    continue
                if self._book.load_record(key, value):
                    applied += 1
                else:
                    unusable += 1
        except LookupError:
            logger.warning(
                "insights topic missing: starting with empty insights",
                extra={"topic": self._settings.topics.insights},
            )
        return applied, unusable


def build_service(
    settings: SentimentSettings | None = None, *, model: SentimentModelLike | None = None
) -> BatchService[ReviewSubmitted]:
    """The sentiment service; `model` replaces the configured model (tests pass fakes)."""
    settings = settings or SentimentSettings()
    chosen: SentimentModelLike
    if model is None:
        # Imported here so that importing the service (CLI, unit tests) does not import torch.
        from shopstream_sentiment.model import SentimentModel  # noqa: PLC0415

        chosen = SentimentModel(settings.model)
    else:
        chosen = model
    book = InsightsBook(insight_rules(settings))
    registry = CollectorRegistry(auto_describe=True)
    products = Gauge(
        "shopstream_sentiment_insight_products",
        "Products whose rolling insights this replica holds in memory.",
        registry=registry,
    )
    products.set_function(lambda: len(book))
    restore_seconds = Gauge(
        "shopstream_sentiment_insights_restore_seconds",
        "Time the start-up rebuild of the insights from the compacted topic took.",
        registry=registry,
    )

    return BatchService(
        **SPEC.identity(settings, __version__),
        accepts=ReviewSubmitted,
        build_handler=lambda context: build_review_handler(context, chosen, book, settings.topics),
        model=chosen,
        components=[InsightsFollower(settings, book, restore_seconds)],
        registry=registry,
    )
