"""A batch of `question.asked` in; one `answer.produced` per question out, plus one
`knowledge.gap_found` per question the shop's knowledge does not cover (hand-off `not_covered`).

No torch here: the model is anything with `predict_batch`, so the mapping is tested with fakes.
Each question is paired with the snapshot of the tenant in its envelope, taken on the event loop
before the batch goes to the inference thread; nothing else decides which knowledge it may see.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shopstream.events import (
    AnswerProduced,
    AnswerProducedPayload,
    Citation,
    Handoff,
    HandoffReason,
    KnowledgeGapFound,
    KnowledgeGapFoundPayload,
    QuestionAsked,
)
from shopstream.runtime.batch import BatchHandler, Publication
from shopstream.runtime.results import ServedModel, lineage_of
from shopstream.runtime.service import ServiceContext
from shopstream_responder.answering import Draft, Question
from shopstream_responder.knowledge import KnowledgeIndex, TenantSnapshot
from shopstream_responder.metrics import ResponderMetrics

MAX_ANSWER_CHARS = 4_000


class ResponderPredictor(ServedModel, Protocol):
    """The part of the model the handler uses; lineage is read per batch, after `load()`."""

    def predict_batch(
        self, inputs: Sequence[tuple[Question, TenantSnapshot | None]]
    ) -> list[Draft]: ...


def question_of(event: QuestionAsked) -> Question:
    payload = event.payload
    return Question(
        tenant_id=event.tenant_id,
        text=payload.text,
        locale=payload.locale,
        product_id=payload.product_id,
    )


def answer_payload(event: QuestionAsked, draft: Draft) -> AnswerProducedPayload:
    return AnswerProducedPayload(
        conversation_id=event.payload.conversation_id,
        answer=None if draft.answer is None else draft.answer[:MAX_ANSWER_CHARS],
        citations=[
            Citation(doc_id=hit.passage.doc_id, passage_id=hit.passage.passage_id, score=hit.score)
            for hit in draft.citations
        ],
        confidence=min(1.0, max(0.0, draft.confidence)),
        intent=draft.intent,
        handoff=Handoff(required=draft.handoff is not None, reason=draft.handoff),
        locale=draft.locale,
    )


def gap_payload(event: QuestionAsked, draft: Draft) -> KnowledgeGapFoundPayload:
    nearest = draft.nearest
    return KnowledgeGapFoundPayload(
        conversation_id=event.payload.conversation_id,
        question=event.payload.text,
        locale=draft.locale,
        intent=draft.intent,
        coverage=min(1.0, max(0.0, draft.coverage or 0.0)),
        nearest=None
        if nearest is None
        else Citation(
            doc_id=nearest.passage.doc_id,
            passage_id=nearest.passage.passage_id,
            score=nearest.score,
        ),
        product_id=event.payload.product_id,
    )


def build_question_handler(  # noqa: PLR0917 - the handler's collaborators
    context: ServiceContext,
    model: ResponderPredictor,
    index: KnowledgeIndex,
    answers_topic: str,
    metrics: ResponderMetrics,
    gaps_topic: str,
) -> BatchHandler[QuestionAsked]:
    async def handle(events: Sequence[QuestionAsked]) -> list[Publication]:
        snapshots = {tenant: index.snapshot(tenant) for tenant in {e.tenant_id for e in events}}
        inputs = [(question_of(event), snapshots[event.tenant_id]) for event in events]
        drafts = await context.inference.run(model.predict_batch, inputs)
        if len(drafts) != len(events):
            raise RuntimeError(f"model returned {len(drafts)} drafts for {len(events)} questions")
        lineage = lineage_of(model)
        pairs = list(zip(events, drafts, strict=True))
        answers = [
            context.result(AnswerProduced, event, lineage, answer_payload(event, draft))
            for event, draft in pairs
        ]
        # "gap" keeps a gap's id apart from its question's answer.
        gaps = [
            context.result(
                KnowledgeGapFound, event, lineage, gap_payload(event, draft), extra="gap"
            )
            for event, draft in pairs
            if draft.handoff is HandoffReason.NOT_COVERED
        ]
        metrics.knowledge_gaps.inc(len(gaps))
        for draft in drafts:
            handoff = draft.handoff.value if draft.handoff is not None else "none"
            metrics.answers.labels(draft.intent.value, handoff).inc()
            if draft.answer is not None:
                metrics.answer_texts.labels(draft.answer_source).inc()
            if draft.injection:
                metrics.injection_attempts.inc()
        return [Publication(answers_topic, answer) for answer in answers] + [
            Publication(gaps_topic, gap) for gap in gaps
        ]

    return handle
