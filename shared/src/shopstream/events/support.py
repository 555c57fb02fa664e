"""Customer service: the shop's knowledge, customer questions and the responder's answers."""

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
)


class KnowledgeKind(StrEnum):
    POLICY = "policy"
    FAQ = "faq"
    PRODUCT_FACT = "product_fact"
    OTHER = "other"


class KnowledgeUpsertedPayload(StrictModel):
    doc_id: EntityId
    title: Name
    body: Document
    kind: KnowledgeKind = KnowledgeKind.OTHER
    locale: Locale = "en"
    product_id: EntityId | None = None


class KnowledgeUpserted(Event):
    event_type: Literal["knowledge.upserted"] = "knowledge.upserted"
    payload: KnowledgeUpsertedPayload

    key_fields = ("doc_id",)


class KnowledgeDeletedPayload(StrictModel):
    doc_id: EntityId


class KnowledgeDeleted(Event):
    event_type: Literal["knowledge.deleted"] = "knowledge.deleted"
    payload: KnowledgeDeletedPayload

    key_fields = ("doc_id",)


class QuestionAskedPayload(StrictModel):
    conversation_id: EntityId
    text: Paragraph = Field(min_length=1)
    locale: Locale | None = None
    product_id: EntityId | None = None
    customer_id: EntityId | None = None
    channel: Label | None = None


class QuestionAsked(Event):
    event_type: Literal["question.asked"] = "question.asked"
    payload: QuestionAskedPayload

    key_fields = ("conversation_id",)


class Intent(StrEnum):
    ORDER_STATUS = "order_status"
    RETURN_REFUND = "return_refund"
    SHIPPING = "shipping"
    PAYMENT = "payment"
    ACCOUNT = "account"
    PRODUCT_QUESTION = "product_question"
    COMPLAINT = "complaint"
    HUMAN_REQUEST = "human_request"
    OTHER = "other"


class HandoffReason(StrEnum):
    LOW_CONFIDENCE = "low_confidence"
    CUSTOMER_ASKED = "customer_asked"
    ANGRY_COMPLAINT = "angry_complaint"
    NEEDS_ACCOUNT_ACCESS = "needs_account_access"
    NO_KNOWLEDGE = "no_knowledge"
    NOT_COVERED = "not_covered"
    """The shop has knowledge, but none of it is about this question: a gap to write an
    article for (``low_confidence`` is "unsure which article")."""


class Citation(StrictModel):
    doc_id: EntityId
    passage_id: EntityId
    score: float = Field(ge=-1, le=1)


class Handoff(StrictModel):
    required: bool
    reason: HandoffReason | None = None


class AnswerProducedPayload(StrictModel):
    conversation_id: EntityId
    answer: Paragraph | None
    """None when the conversation is handed off without an answer."""
    citations: list[Citation] = Field(default_factory=list, max_length=20)
    confidence: float = Field(ge=0, le=1)
    intent: Intent
    handoff: Handoff
    locale: Locale


class AnswerProduced(ResultEvent):
    event_type: Literal["answer.produced"] = "answer.produced"
    payload: AnswerProducedPayload

    key_fields = ("conversation_id",)


class KnowledgeGapFoundPayload(StrictModel):
    """A customer's question that the shop's knowledge does not cover (hand-off reason
    ``not_covered``), for the shop to write an article about."""

    conversation_id: EntityId
    question: Paragraph = Field(min_length=1)
    locale: Locale
    intent: Intent
    coverage: float = Field(ge=0, le=1)
    """Probability the responder gave that the knowledge covers the question."""
    nearest: Citation | None = None
    """The passage the question came closest to (what it would have been answered from)."""
    product_id: EntityId | None = None


class KnowledgeGapFound(ResultEvent):
    event_type: Literal["knowledge.gap_found"] = "knowledge.gap_found"
    payload: KnowledgeGapFoundPayload

    key_fields = ("conversation_id",)
