"""The sentiment service: settings, model, insights state and handler wired onto the runtime."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge

from shopstream.events import ReviewSubmitted
from shopstream.kafka_io import read_to_end
from shopstream.runtime.service import BatchService, ModelLifecycle, ServiceContext
from shopstream_sentiment import __version__
from shopstream_sentiment.config import SentimentSettings
from shopstream_sentiment.handlers import SentimentPredictor, build_review_handler
from shopstream_sentiment.insights import InsightRules, InsightsBook

SERVICE_NAME = "sentiment"
logger = logging.getLogger("shopstream.sentiment")


class SentimentModelLike(SentimentPredictor, ModelLifecycle, Protocol):
    """What the service needs from a model: lifecycle plus batched prediction."""


def insight_rules(settings: SentimentSettings) -> InsightRules:
    return InsightRules.from_names(
        settings.insight_windows,
        alert_min_reviews=settings.alert_min_reviews,
        alert_jump=settings.alert_jump,
    )


async def restore_insights(
    settings: SentimentSettings, book: InsightsBook, restore_seconds: Gauge
) -> None:
    """Rebuild every product's insights from the compacted insights topic, before consuming.

    The topic is read outside the consumer group up to the end offsets seen on start, so each
    replica has the state of every product whichever partitions it is assigned.
    """
    started = time.perf_counter()
    applied = unusable = 0
    try:
        async for key, value in read_to_end(settings.kafka, settings.topics.insights):
            if book.load_record(key, value):
                applied += 1
            else:
                unusable += 1
    except LookupError:
        logger.warning(
            "insights topic missing: starting with empty insights",
            extra={"topic": settings.topics.insights},
        )
        return
    seconds = time.perf_counter() - started
    restore_seconds.set(seconds)
    logger.info(
        "insights restored",
        extra={
            "records": applied,
            "unusable_records": unusable,
            "products": len(book),
            "seconds": round(seconds, 3),
        },
    )


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

    def restore_hook(_: ServiceContext) -> Callable[[], Awaitable[None]]:
        async def restore() -> None:
            await restore_insights(settings, book, restore_seconds)

        return restore

    return BatchService(
        name=SERVICE_NAME,
        version=__version__,
        settings=settings,
        input_topics=[settings.topics.reviews],
        output_topics=[settings.topics.sentiment, settings.topics.insights],
        accepts=ReviewSubmitted,
        build_handler=lambda context: build_review_handler(context, chosen, book, settings.topics),
        model=chosen,
        startup_hooks=[restore_hook],
        registry=registry,
    )
