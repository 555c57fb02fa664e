"""Reviews: what shoppers write, how the sentiment service scores it, per-product insights."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from shopstream.events.envelope import (
    Document,
    EntityId,
    Event,
    Label,
    Locale,
    Name,
    Paragraph,
    ResultEvent,
    StrictModel,
    UtcTimestamp,
)


class Polarity(StrEnum):
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"


class ReviewSubmittedPayload(StrictModel):
    review_id: EntityId
    product_id: EntityId
    text: Document = Field(min_length=1, max_length=20_000)
    rating: float | None = Field(default=None, ge=0, le=5)
    title: Name | None = None
    locale: Locale | None = None


class ReviewSubmitted(Event):
    event_type: Literal["review.submitted"] = "review.submitted"
    payload: ReviewSubmittedPayload

    key_fields = ("product_id",)


class AspectFinding(StrictModel):
    aspect: Label
    polarity: Polarity
    score: float = Field(ge=0, le=1)
    snippet: Paragraph


class ReviewScoredPayload(StrictModel):
    review_id: EntityId
    product_id: EntityId
    label: Polarity
    score: float = Field(ge=0, le=1)
    """Calibrated probability that the review is positive."""
    confidence: float = Field(ge=0, le=1)
    aspects: list[AspectFinding] = Field(default_factory=list, max_length=100)
    rating: float | None = Field(default=None, ge=0, le=5)
    locale: Locale | None = None


class ReviewScored(ResultEvent):
    event_type: Literal["review.scored"] = "review.scored"
    payload: ReviewScoredPayload

    key_fields = ("product_id",)


class SentimentMix(StrictModel):
    positive: int = Field(ge=0)
    neutral: int = Field(ge=0)
    negative: int = Field(ge=0)


class WindowSummary(StrictModel):
    window: Label
    """e.g. `7d`, `30d`, `all`."""
    mix: SentimentMix
    negative_share: float = Field(ge=0, le=1)


class PainPoint(StrictModel):
    aspect: Label
    mentions: int = Field(ge=1)
    examples: list[Paragraph] = Field(max_length=5)


class MixBucket(SentimentMix):
    """The sentiment mix of the reviews whose `occurred_at` falls in one time bucket."""

    start: UtcTimestamp


class InsightsCheckpoint(StrictModel):
    """What the producing service needs to resume a product's insights after a restart.

    The insights topic is compacted, so its latest record per product is the service's state
    store; consumers other than the producing service can ignore this block.
    """

    bucket_hours: int = Field(default=24, ge=1, le=24 * 366)
    """Width of each bucket: 24 when every window is a whole number of days, else 1."""
    buckets: list[MixBucket] = Field(default_factory=list, max_length=10_000)
    """Non-empty buckets covering the longest window, oldest first; every window is recomputed
    from them."""
    recent_inputs: list[Label] = Field(default_factory=list, max_length=1_000)
    """Short digests of the latest input event ids already counted, so that a review redelivered
    after a crash is not counted twice."""


class ProductInsightsUpdatedPayload(StrictModel):
    product_id: EntityId
    review_count: int = Field(ge=0)
    mix: SentimentMix
    windows: list[WindowSummary] = Field(max_length=10)
    trend: float = Field(ge=-1, le=1)
    """Negative share of the shortest window minus that of the baseline (the product's reviews
    before that window); > 0 means worsening."""
    pain_points: list[PainPoint] = Field(max_length=20)
    """Negative aspects, most mentioned first."""
    alert: bool
    alert_reason: Paragraph | None = None
    updated_at: UtcTimestamp
    latest_review_at: UtcTimestamp | None = None
    """`occurred_at` of the newest review counted; the windows end with its time bucket."""
    checkpoint: InsightsCheckpoint | None = None


class ProductInsightsUpdated(ResultEvent):
    event_type: Literal["product.insights.updated"] = "product.insights.updated"
    payload: ProductInsightsUpdatedPayload

    key_fields = ("product_id",)
