"""A batch of `review.submitted` in; `review.scored` per review and insights per product out.

No torch here: the model is anything with `predict_batch`, so the mapping is tested with fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from shopstream.events import (
    AspectFinding,
    Lineage,
    Polarity,
    ProductInsightsUpdated,
    ReviewScored,
    ReviewScoredPayload,
    ReviewSubmitted,
    utc_now,
)
from shopstream.runtime.batch import BatchHandler, Publication
from shopstream.runtime.results import ServedModel, lineage_of
from shopstream.runtime.service import ServiceContext
from shopstream.topics import TopicSettings
from shopstream_sentiment.insights import InsightsBook, ScoredReview
from shopstream_sentiment.predictions import ReviewText, SentimentPrediction

MAX_ASPECTS = 100
MAX_SNIPPET_CHARS = 4_000


class SentimentPredictor(ServedModel, Protocol):
    """The part of the model the handler uses; lineage is read per batch, after `load()`."""

    def predict_batch(self, inputs: Sequence[ReviewText]) -> list[SentimentPrediction]: ...


def review_text(event: ReviewSubmitted) -> ReviewText:
    payload = event.payload
    return ReviewText(text=payload.text, rating=payload.rating, locale=payload.locale)


def _probability(value: float) -> float:
    # Softmax and calibration arithmetic can land a hair outside [0, 1]; the schema would then
    # reject a perfectly good result and dead-letter the review.
    return min(1.0, max(0.0, float(value)))


def scored_payload(event: ReviewSubmitted, prediction: SentimentPrediction) -> ReviewScoredPayload:
    return ReviewScoredPayload(
        review_id=event.payload.review_id,
        product_id=event.payload.product_id,
        label=Polarity(prediction.label),
        score=_probability(prediction.score),
        confidence=_probability(prediction.confidence),
        aspects=[
            AspectFinding(
                aspect=aspect.aspect,
                polarity=Polarity(aspect.polarity),
                score=_probability(aspect.score),
                snippet=aspect.snippet[:MAX_SNIPPET_CHARS],
            )
            for aspect in prediction.aspects[:MAX_ASPECTS]
        ],
        rating=event.payload.rating,
        locale=event.payload.locale,
    )


def build_review_handler(
    context: ServiceContext,
    model: SentimentPredictor,
    book: InsightsBook,
    topics: TopicSettings,
) -> BatchHandler[ReviewSubmitted]:
    async def handle(events: Sequence[ReviewSubmitted]) -> list[Publication]:
        predictions = await context.inference.run(
            model.predict_batch, [review_text(event) for event in events]
        )
        if len(predictions) != len(events):
            raise RuntimeError(
                f"model returned {len(predictions)} predictions for {len(events)} reviews"
            )
        lineage = lineage_of(model)
        # Every result is built (and validated) before the insights change, so a batch that
        # fails here and is bisected by the runtime has not counted anything yet.
        scored = [
            context.result(ReviewScored, event, lineage, scored_payload(event, prediction))
            for event, prediction in zip(events, predictions, strict=True)
        ]
        last_per_product: dict[tuple[str, str], ReviewSubmitted] = {}
        for event, result in zip(events, scored, strict=True):
            key = (event.tenant_id, event.payload.product_id)
            book.add(
                *key,
                ScoredReview(
                    event_id=event.event_id,
                    occurred_at=event.occurred_at,
                    label=result.payload.label,
                    aspects=result.payload.aspects,
                ),
            )
            last_per_product[key] = event
        now = utc_now()
        insights = [
            _insights_event(context, lineage, book, last, now) for last in last_per_product.values()
        ]
        return [
            *(Publication(topics.sentiment, event) for event in scored),
            *(Publication(topics.insights, event) for event in insights),
        ]

    return handle


def _insights_event(
    context: ServiceContext,
    lineage: Lineage,
    book: InsightsBook,
    last: ReviewSubmitted,
    now: datetime,
) -> ProductInsightsUpdated:
    payload = book.snapshot(last.tenant_id, last.payload.product_id, now)
    # The same last review and the same count give the same id, so a batch replayed after a
    # crash republishes the same insights event rather than a new one.
    return context.result(
        ProductInsightsUpdated, last, lineage, payload, extra=f"insights:{payload.review_count}"
    )
