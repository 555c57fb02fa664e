"""Marketing copy: requests from campaign tools and the variants the describer writes."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from shopstream.events.envelope import (
    EntityId,
    Event,
    Label,
    Locale,
    Name,
    Paragraph,
    ResultEvent,
    StrictModel,
    Text,
)
from shopstream.events.quality import QualityReport


class Channel(StrEnum):
    SMS = "sms"
    PUSH = "push"
    EMAIL_SUBJECT = "email_subject"
    SOCIAL_POST = "social_post"
    BANNER = "banner"


class CopyRequestedPayload(StrictModel):
    campaign_id: EntityId
    product_ids: list[EntityId] = Field(min_length=1, max_length=50)
    channel: Channel
    locale: Locale = "en"
    audience: Paragraph | None = None
    tone: Label | None = None
    max_length: int | None = Field(default=None, ge=10, le=5_000)
    """Characters; when absent the channel's default limit for the locale applies."""
    variants: int = Field(default=3, ge=1, le=10)
    brief: Paragraph | None = None


class CopyRequested(Event):
    event_type: Literal["copy.requested"] = "copy.requested"
    payload: CopyRequestedPayload

    key_fields = ("campaign_id",)


class CopyVariant(StrictModel):
    text: Paragraph
    quality: QualityReport


class CopyGeneratedPayload(StrictModel):
    campaign_id: EntityId
    channel: Channel
    locale: Locale
    variants: list[CopyVariant] = Field(max_length=10)
    request_event_id: Text | None = None
    review_required: bool


class CopyGenerated(ResultEvent):
    event_type: Literal["copy.generated"] = "copy.generated"
    payload: CopyGeneratedPayload

    key_fields = ("campaign_id",)


class DescriptionGeneratedPayload(StrictModel):
    product_id: EntityId
    locale: Locale
    description: Paragraph
    bullet_points: list[Paragraph] = Field(default_factory=list, max_length=10)
    seo_title: Name | None = None
    content_hash: Label
    """Hash of the product content the text was written from; unchanged products are skipped."""
    quality: QualityReport


class DescriptionGenerated(ResultEvent):
    event_type: Literal["description.generated"] = "description.generated"
    payload: DescriptionGeneratedPayload

    key_fields = ("product_id", "locale")
