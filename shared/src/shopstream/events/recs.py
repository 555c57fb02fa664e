"""Recommendations: shopper activity, requests from the storefront, ranked results."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from shopstream.events.envelope import (
    EntityId,
    Event,
    Label,
    Name,
    ResultEvent,
    StrictModel,
)


class ActivityKind(StrEnum):
    VIEW = "view"
    CART = "cart"
    PURCHASE = "purchase"
    SEARCH = "search"
    RATING = "rating"


class ActivityRecordedPayload(StrictModel):
    user_id: EntityId
    kind: ActivityKind
    product_id: EntityId | None = None
    session_id: EntityId | None = None
    query: Name | None = None
    rating: float | None = Field(default=None, ge=0, le=5)
    quantity: int | None = Field(default=None, ge=1, le=10_000)


class ActivityRecorded(Event):
    event_type: Literal["activity.recorded"] = "activity.recorded"
    payload: ActivityRecordedPayload

    key_fields = ("user_id",)


class RecommendationsRequestedPayload(StrictModel):
    user_id: EntityId
    request_id: EntityId
    count: int = Field(default=10, ge=1, le=100)
    context_product_id: EntityId | None = None
    """The product page being viewed, if any."""
    placement: Label | None = None


class RecommendationsRequested(Event):
    event_type: Literal["recommendations.requested"] = "recommendations.requested"
    payload: RecommendationsRequestedPayload

    key_fields = ("user_id",)


class RecommendedItem(StrictModel):
    product_id: EntityId
    score: float
    reason: Name


class RecommendationsProducedPayload(StrictModel):
    user_id: EntityId
    request_id: EntityId | None
    """None when produced after key activity rather than for a request."""
    items: list[RecommendedItem] = Field(max_length=100)
    cold_start: bool


class RecommendationsProduced(ResultEvent):
    event_type: Literal["recommendations.produced"] = "recommendations.produced"
    payload: RecommendationsProducedPayload

    key_fields = ("user_id",)
