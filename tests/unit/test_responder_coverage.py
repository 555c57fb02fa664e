"""The per-tenant coverage model: rehearsed from the shop's own FAQ headings, it hands
questions the knowledge does not cover off as ``not_covered``; torch-free encoders."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Sequence

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from shopstream.events import HandoffReason, KnowledgeGapFound, KnowledgeUpserted, QuestionAsked
from shopstream_responder.answering import Question
from shopstream_responder.app import KnowledgeSync, responder_service
from shopstream_responder.config import CoverageConfig, ResponderSettings
from shopstream_responder.coverage import train_coverage
from shopstream_responder.encoding import BlendedEncoder
from shopstream_responder.follower import KnowledgeFollower
from shopstream_responder.handlers import build_question_handler
from shopstream_responder.intents import IntentClassifier, IntentRules
from shopstream_responder.knowledge import Document, KnowledgeIndex, PassageVectors
from shopstream_responder.metrics import ResponderMetrics
from shopstream_responder.model import ResponderModel
from support.responder import (
    FAQ,
    FAQ_SHOP,
    HashingEmbedder,
    event_record,
    faq_event,
    hashing_settings,
)

pytestmark = pytest.mark.unit


def shop(
    events: Sequence[KnowledgeUpserted], settings: ResponderSettings | None = None
) -> tuple[ResponderModel, KnowledgeIndex, KnowledgeFollower]:
    settings = settings or hashing_settings()
    rules = IntentRules.from_file(settings.intent_rules)
    model = ResponderModel(settings.model, settings.answering, rules, embedder=HashingEmbedder())
    model.load()
    index = KnowledgeIndex(topic_of=IntentClassifier(rules).rule_intent)

    async def embed(documents: Sequence[Document]) -> list[PassageVectors]:
        return model.embed_documents(documents)

    follower = KnowledgeFollower(settings, index, embed, ResponderMetrics(CollectorRegistry()))
    feed(follower, settings, events)
    return model, index, follower


def feed(
    follower: KnowledgeFollower, settings: ResponderSettings, events: Sequence[KnowledgeUpserted]
) -> None:
    records = [event_record(settings.topics.knowledge, event, n) for n, event in enumerate(events)]
    asyncio.run(follower.apply(records))


def ask(model: ResponderModel, index: KnowledgeIndex, text: str, tenant: str = FAQ_SHOP) -> object:
    [draft] = model.predict_batch([(Question(tenant, text), index.snapshot(tenant))])
    return draft


MODEL, INDEX, FOLLOWER = shop([faq_event(doc_id) for doc_id in FAQ])


def test_a_question_the_knowledge_covers_is_answered_with_high_coverage() -> None:
    draft = ask(MODEL, INDEX, "How can I return an item I bought?")
    assert draft.handoff is None, draft
    assert draft.coverage is not None
    assert draft.coverage >= CoverageConfig().min_probability
    assert draft.citations[0].passage.doc_id == "returns"


def test_a_question_no_article_covers_is_handed_off_as_not_covered() -> None:
    draft = ask(MODEL, INDEX, "Do you offer gift wrapping for a present?")
    assert draft.handoff is HandoffReason.NOT_COVERED, draft
    assert draft.answer is None
    assert draft.citations == ()
    assert draft.coverage is not None
    assert draft.coverage < CoverageConfig().min_probability
    assert draft.nearest is not None, "the gap names the passage it came closest to"


def test_coverage_is_relearned_when_the_knowledge_changes() -> None:
    model, index, follower = shop([faq_event(doc_id) for doc_id in FAQ])
    before = ask(model, index, "Do you offer gift wrapping for a present?")
    assert before.handoff is HandoffReason.NOT_COVERED
    feed(follower, hashing_settings(), [faq_event("gift-wrap")])
    after = ask(model, index, "Do you offer gift wrapping for a present?")
    assert after.handoff is None, after
    assert after.citations[0].passage.doc_id == "gift-wrap"


def test_coverage_is_learned_per_tenant_from_that_tenant_alone() -> None:
    """Two shops on one replica: the one with a gift-wrapping article answers the question,
    the one without hands it off; neither's coverage model sees the other's knowledge."""
    other = "wrapping-shop"
    events = [faq_event(doc_id) for doc_id in FAQ]
    events += [faq_event(doc_id, tenant=other) for doc_id in [*FAQ, "gift-wrap"]]
    model, index, _ = shop(events)
    text = "Do you offer gift wrapping for a present?"
    without = ask(model, index, text)
    with_article = ask(model, index, text, tenant=other)
    assert without.handoff is HandoffReason.NOT_COVERED
    assert with_article.handoff is None, with_article
    assert with_article.citations[0].passage.doc_id == "gift-wrap"
    assert ask(model, index, text).handoff is HandoffReason.NOT_COVERED, "asked again, same"


def test_a_replaced_snapshot_is_freed_even_before_the_next_question() -> None:
    """The cached models must not keep an old snapshot's vectors alive: a shop that changes
    its knowledge and then gets no question would hold two copies of its vectors."""
    model, index, follower = shop([faq_event(doc_id) for doc_id in FAQ])
    old = index.snapshot(FAQ_SHOP)
    assert old is not None
    ask(model, index, "How can I return an item I bought?")
    gone = weakref.ref(old)
    del old
    feed(follower, hashing_settings(), [faq_event("gift-wrap")])
    assert index.snapshot(FAQ_SHOP) is not None, "the index builds the new snapshot"
    gc.collect()
    assert gone() is None


POLICIES = {
    "returns": "You can return an item within 30 days of delivery for a full refund.",
    "delivery": "Standard delivery takes 2 to 4 working days; express delivery takes one day.",
    "payment": "We accept credit cards, PayPal and bank transfer as payment methods.",
    "warranty": "Electronics carry a two-year warranty against manufacturing defects.",
    "password": "Reset a forgotten password with the link on the sign-in page.",
    "vouchers": "Enter one voucher code per order in the basket before you pay.",
    "invoices": "Download the invoice of every order as a PDF under My orders.",
    "stores": "Our shops in Berlin and Munich open from 10 am to 8 pm.",
}


def test_a_help_centre_of_titled_prose_articles_learns_coverage_from_its_titles() -> None:
    """No FAQ headings at all: each article is a title over prose, as many help centres are.
    The hashing encoder is a bag of words, so only a question worded like a title counts as
    covered here; how paraphrases fare is measured with e5 on the Chinese FAQ (README)."""
    events = [
        KnowledgeUpserted(
            tenant_id="prose-shop",
            payload={"doc_id": doc_id, "title": f"{doc_id.title()} policy", "body": body},
        )
        for doc_id, body in POLICIES.items()
    ]
    model, index, _ = shop(events)
    covered = ask(model, index, "What is your returns policy?", tenant="prose-shop")
    uncovered = ask(model, index, "Do you offer gift wrapping for a present?", tenant="prose-shop")
    assert covered.coverage is not None, "coverage is learned without any FAQ heading"
    assert covered.handoff is None, covered
    assert covered.citations[0].passage.doc_id == "returns"
    assert uncovered.handoff is HandoffReason.NOT_COVERED, uncovered


def test_too_few_rehearsals_learn_no_coverage() -> None:
    """Four documents, but three covered rehearsals (one per titled policy; a lone FAQ
    article has no other article to fold against): no model from a coin toss."""
    events = [faq_event("returns")]
    events += [
        KnowledgeUpserted(
            tenant_id=FAQ_SHOP,
            payload={"doc_id": doc_id, "title": doc_id.title(), "body": POLICIES[doc_id]},
        )
        for doc_id in ("stores", "invoices", "vouchers")
    ]
    model, index, _ = shop(events)
    draft = ask(model, index, "Do you offer gift wrapping for a present?")
    assert draft.coverage is None
    assert draft.handoff is not HandoffReason.NOT_COVERED


def test_a_shop_with_too_few_articles_learns_no_coverage_and_hands_nothing_off_for_it() -> None:
    model, index, _ = shop([faq_event("returns"), faq_event("shipping")])
    draft = ask(model, index, "Do you offer gift wrapping for a present?")
    assert draft.coverage is None
    assert draft.handoff is not HandoffReason.NOT_COVERED


def test_coverage_off_in_the_settings_hands_nothing_off_as_not_covered() -> None:
    settings = hashing_settings()
    answering = settings.answering.model_copy(update={"coverage": CoverageConfig(enabled=False)})
    model, index, _ = shop(
        [faq_event(doc_id) for doc_id in FAQ],
        settings.model_copy(update={"answering": answering}),
    )
    draft = ask(model, index, "Do you offer gift wrapping for a present?")
    assert draft.coverage is None
    assert draft.handoff is not HandoffReason.NOT_COVERED


def test_rehearsals_hold_out_headings_and_articles_and_learn_both_labels() -> None:
    snapshot = INDEX.snapshot(FAQ_SHOP)
    assert snapshot is not None
    encoder = BlendedEncoder(HashingEmbedder(), None, english_weight=0.5, batch_size=8)
    model = train_coverage(snapshot, hashing_settings().answering, encoder.heading_questions)
    assert model is not None
    headings = sum(len(headings) for headings, _ in FAQ.values())
    # Every heading is asked once held out alone and once with its whole article.
    assert model.rehearsals == 2 * headings
    assert model.weights.shape == (4,)
    assert model.weights[0] > 0, "closer questions are likelier covered"


def test_a_big_faq_rehearses_with_a_bounded_share_of_its_headings() -> None:
    snapshot = INDEX.snapshot(FAQ_SHOP)
    assert snapshot is not None
    encoder = BlendedEncoder(HashingEmbedder(), None, english_weight=0.5, batch_size=8)
    answering = hashing_settings().answering
    bounded = answering.model_copy(
        update={"coverage": answering.coverage.model_copy(update={"max_rehearsals": 10})}
    )
    model = train_coverage(snapshot, bounded, encoder.heading_questions)
    assert model is not None
    assert 0 < model.rehearsals <= 2 * 10


def test_stored_heading_vectors_are_exactly_the_question_vectors_of_their_text() -> None:
    """The rehearsals never run the encoder: a heading's stored vector, rescaled, must be what
    the encoder gives the same text asked as a question, blended (English) or not (Chinese)."""
    encoder = BlendedEncoder(HashingEmbedder(), HashingEmbedder(), english_weight=0.3, batch_size=4)
    texts = ["How do I return an item?", "退货要多久到账？"]
    languages = ["en", "zh"]
    stored = encoder.documents(texts, "query")
    asked = encoder.questions(texts, languages)
    rehearsed = encoder.heading_questions(stored, languages)
    for question, rehearsal in zip(asked, rehearsed, strict=True):
        assert rehearsal.blended == question.blended
        np.testing.assert_allclose(rehearsal.retrieval, question.retrieval, atol=1e-6)
        np.testing.assert_allclose(rehearsal.features, question.features, atol=1e-6)
        np.testing.assert_allclose(rehearsal.intent, question.intent, atol=1e-6)


async def test_a_not_covered_question_publishes_a_knowledge_gap_next_to_its_hand_off() -> None:
    settings = ResponderSettings(create_topics=False, http_port=0)
    topics = settings.topics
    service = responder_service(settings, MODEL, INDEX, CollectorRegistry())
    metrics = service.component(KnowledgeSync).metrics
    handle = build_question_handler(
        service.context,
        MODEL,
        INDEX,
        topics.answers,
        metrics,
        topics.knowledge_gaps,
    )
    events = [
        QuestionAsked(
            tenant_id=FAQ_SHOP,
            payload={"conversation_id": "c-1", "text": "How can I return an item I bought?"},
        ),
        QuestionAsked(
            tenant_id=FAQ_SHOP,
            payload={"conversation_id": "c-2", "text": "Do you offer gift wrapping for a present?"},
        ),
    ]
    publications = await handle(events)
    by_topic = {
        topic: [p.event for p in publications if p.topic == topic]
        for topic in (topics.answers, topics.knowledge_gaps)
    }
    answers, gaps = by_topic[topics.answers], by_topic[topics.knowledge_gaps]
    assert len(answers) == 2
    assert answers[1].payload.handoff.reason is HandoffReason.NOT_COVERED
    [gap] = gaps
    assert isinstance(gap, KnowledgeGapFound)
    assert gap.tenant_id == FAQ_SHOP
    assert gap.causation_id == events[1].event_id
    assert gap.payload.question == "Do you offer gift wrapping for a present?"
    assert gap.payload.nearest is not None
    assert gap.event_id != answers[1].event_id
    assert gap.message_key() == f"{FAQ_SHOP}:c-2"
    again = await handle(events)
    assert [p.event.event_id for p in again] == [p.event.event_id for p in publications]
    assert metrics.knowledge_gaps._value.get() == 2
    assert metrics.answers.labels("other", "not_covered")._value.get() >= 1
