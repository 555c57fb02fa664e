"""The event contract: every event type of shopstream, its envelope, and how bytes become events."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

from shopstream.events.catalog import (
    Price,
    ProductChange,
    ProductDeleted,
    ProductDeletedPayload,
    ProductUpserted,
    ProductUpsertedPayload,
    parse_product_record,
)
from shopstream.events.dead_letter import DeadLetter, DeadLetterPayload
from shopstream.events.envelope import (
    MAX_EVENT_BYTES,
    RESULT_ID_NAMESPACE,
    Event,
    Lineage,
    Producer,
    ResultEvent,
    parse_key,
    result_event_id,
    result_id,
    utc_now,
)
from shopstream.events.marketing import (
    Channel,
    CopyGenerated,
    CopyGeneratedPayload,
    CopyRequested,
    CopyRequestedPayload,
    CopyVariant,
    DescriptionGenerated,
    DescriptionGeneratedPayload,
)
from shopstream.events.quality import Claim, ComplianceFinding, GenerationPath, QualityReport
from shopstream.events.recs import (
    ActivityKind,
    ActivityRecorded,
    ActivityRecordedPayload,
    RecommendationsProduced,
    RecommendationsProducedPayload,
    RecommendationsRequested,
    RecommendationsRequestedPayload,
    RecommendedItem,
)
from shopstream.events.reviews import (
    AspectFinding,
    InsightsCheckpoint,
    MixBucket,
    PainPoint,
    Polarity,
    ProductInsightsUpdated,
    ProductInsightsUpdatedPayload,
    ReviewScored,
    ReviewScoredPayload,
    ReviewSubmitted,
    ReviewSubmittedPayload,
    SentimentMix,
    WindowSummary,
)
from shopstream.events.support import (
    AnswerProduced,
    AnswerProducedPayload,
    Citation,
    Handoff,
    HandoffReason,
    Intent,
    KnowledgeDeleted,
    KnowledgeDeletedPayload,
    KnowledgeGapFound,
    KnowledgeGapFoundPayload,
    KnowledgeKind,
    KnowledgeUpserted,
    KnowledgeUpsertedPayload,
    QuestionAsked,
    QuestionAskedPayload,
)

EVENT_CLASSES: tuple[type[Event], ...] = (
    ProductUpserted,
    ProductDeleted,
    CopyRequested,
    KnowledgeUpserted,
    KnowledgeDeleted,
    QuestionAsked,
    ActivityRecorded,
    RecommendationsRequested,
    ReviewSubmitted,
    DescriptionGenerated,
    CopyGenerated,
    AnswerProduced,
    KnowledgeGapFound,
    RecommendationsProduced,
    ReviewScored,
    ProductInsightsUpdated,
    DeadLetter,
)
EVENT_TYPES: dict[str, type[Event]] = {
    cls.model_fields["event_type"].default: cls for cls in EVENT_CLASSES
}

AnyEvent = Annotated[
    ProductUpserted
    | ProductDeleted
    | CopyRequested
    | KnowledgeUpserted
    | KnowledgeDeleted
    | QuestionAsked
    | ActivityRecorded
    | RecommendationsRequested
    | ReviewSubmitted
    | DescriptionGenerated
    | CopyGenerated
    | AnswerProduced
    | KnowledgeGapFound
    | RecommendationsProduced
    | ReviewScored
    | ProductInsightsUpdated
    | DeadLetter,
    Field(discriminator="event_type"),
]
any_event_adapter: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)

__all__ = [
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "RESULT_ID_NAMESPACE",
    "ActivityKind",
    "ActivityRecorded",
    "ActivityRecordedPayload",
    "AnswerProduced",
    "AnswerProducedPayload",
    "AnyEvent",
    "AspectFinding",
    "Channel",
    "Citation",
    "Claim",
    "ComplianceFinding",
    "CopyGenerated",
    "CopyGeneratedPayload",
    "CopyRequested",
    "CopyRequestedPayload",
    "CopyVariant",
    "DeadLetter",
    "DeadLetterPayload",
    "DescriptionGenerated",
    "DescriptionGeneratedPayload",
    "Event",
    "GenerationPath",
    "Handoff",
    "HandoffReason",
    "InsightsCheckpoint",
    "Intent",
    "KnowledgeDeleted",
    "KnowledgeDeletedPayload",
    "KnowledgeGapFound",
    "KnowledgeGapFoundPayload",
    "KnowledgeKind",
    "KnowledgeUpserted",
    "KnowledgeUpsertedPayload",
    "Lineage",
    "MixBucket",
    "PainPoint",
    "Polarity",
    "Price",
    "Producer",
    "ProductChange",
    "ProductDeleted",
    "ProductDeletedPayload",
    "ProductInsightsUpdated",
    "ProductInsightsUpdatedPayload",
    "ProductUpserted",
    "ProductUpsertedPayload",
    "QualityReport",
    "QuestionAsked",
    "QuestionAskedPayload",
    "RecommendationsProduced",
    "RecommendationsProducedPayload",
    "RecommendationsRequested",
    "RecommendationsRequestedPayload",
    "RecommendedItem",
    "ResultEvent",
    "ReviewScored",
    "ReviewScoredPayload",
    "ReviewSubmitted",
    "ReviewSubmittedPayload",
    "SentimentMix",
    "WindowSummary",
    "any_event_adapter",
    "parse_key",
    "parse_product_record",
    "result_event_id",
    "result_id",
    "utc_now",
]
