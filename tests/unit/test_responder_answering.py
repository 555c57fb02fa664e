"""Answers, citations, confidence and hand-offs on a small shop, with a torch-free encoder."""

from __future__ import annotations

import numpy as np
import pytest

from shopstream.events import HandoffReason, Intent, KnowledgeKind
from shopstream_responder.answering import (
    DocumentMatch,
    Hit,
    Question,
    confidence,
    extract_answer,
    rank_documents,
    search,
)
from shopstream_responder.config import AnsweringConfig
from shopstream_responder.intents import IntentRules
from shopstream_responder.knowledge import (
    KnowledgeIndex,
    Passage,
    PassageVectors,
    TenantSnapshot,
)
from shopstream_responder.model import ResponderModel
from support.responder import (
    NORTH,
    SOUTH,
    HashingEmbedder,
    hashing_settings,
    two_shop_responder,
)

pytestmark = pytest.mark.unit

SETTINGS = hashing_settings()
RULES = IntentRules.from_file(SETTINGS.intent_rules)


def build(answering: AnsweringConfig | None = None) -> tuple[ResponderModel, KnowledgeIndex]:
    """A responder over both shops; `answering` replaces the whole answering config."""
    settings = (
        SETTINGS if answering is None else SETTINGS.model_copy(update={"answering": answering})
    )
    return two_shop_responder(HashingEmbedder(), settings)


MODEL, INDEX = build()


def ask(text: str, tenant: str = NORTH, **fields: str) -> object:
    [draft] = MODEL.predict_batch([(Question(tenant, text, **fields), INDEX.snapshot(tenant))])
    return draft


def test_a_policy_question_is_answered_from_the_shop_with_a_citation() -> None:
    draft = ask("How many days do I have to return an item for a refund?")
    assert draft.handoff is None
    assert draft.intent is Intent.RETURN_REFUND
    assert draft.answer is not None
    assert "30 days" in draft.answer
    assert draft.citations[0].passage.passage_id == "returns-policy#0"
    assert draft.citations[0].passage.doc_id == "returns-policy"
    assert 0.0 < draft.confidence <= 1.0
    assert draft.locale == "en"


def test_a_chinese_question_is_answered_from_the_chinese_policy() -> None:
    draft = ask("我可以在多少天内申请无理由退货？")
    assert draft.handoff is None
    assert draft.locale == "zh"
    assert draft.citations[0].passage.doc_id == "returns-policy-zh"
    assert draft.answer is not None
    assert "30天" in draft.answer


def test_faq_answers_come_without_the_question_line() -> None:
    draft = ask("Is shipping free?")
    assert draft.answer == "Shipping is free on orders over 99 EUR."
    assert draft.citations[0].passage.heading == "Is shipping free?"


@pytest.mark.parametrize(
    ("text", "reason", "intent"),
    [
        ("I want to speak to a human agent", HandoffReason.CUSTOMER_ASKED, Intent.HUMAN_REQUEST),
        ("转人工", HandoffReason.CUSTOMER_ASKED, Intent.HUMAN_REQUEST),
        (
            "Your refund policy is a SCAM, this is unacceptable!!!",
            HandoffReason.ANGRY_COMPLAINT,
            Intent.RETURN_REFUND,
        ),
        ("垃圾店铺，我要投诉！", HandoffReason.ANGRY_COMPLAINT, Intent.COMPLAINT),
        ("Do you sell telescopes for astronomy?", HandoffReason.LOW_CONFIDENCE, Intent.OTHER),
    ],
)
def test_hand_offs_carry_their_reason_and_no_answer(
    text: str, reason: HandoffReason, intent: Intent
) -> None:
    draft = ask(text)
    assert draft.handoff is reason
    assert draft.intent is intent
    assert draft.answer is None
    assert draft.citations == ()


def test_order_status_is_answered_from_knowledge_and_handed_off_for_account_access() -> None:
    draft = ask("Where is my order? How long does delivery take?")
    assert draft.intent is Intent.ORDER_STATUS
    assert draft.handoff is HandoffReason.NEEDS_ACCOUNT_ACCESS
    assert draft.answer is not None, "the general answer still helps the agent and customer"
    model, index = build(
        SETTINGS.answering.model_copy(update={"account_access_intents": frozenset()})
    )
    [with_order_system] = model.predict_batch(
        [
            (
                Question(NORTH, "Where is my order? How long does delivery take?"),
                index.snapshot(NORTH),
            )
        ]
    )
    assert with_order_system.handoff is None


def test_a_shop_without_knowledge_hands_off() -> None:
    draft = ask("How many days do I have to return an item?", tenant="empty-shop")
    assert draft.handoff is HandoffReason.NO_KNOWLEDGE
    assert draft.confidence == 0.0


def test_a_named_product_limits_the_search_to_that_products_facts() -> None:
    draft = ask("Is shipping free?", product_id="no-such-product")
    assert draft.citations[0].passage.doc_id == "shipping", "general knowledge stays searchable"


def test_a_question_is_never_answered_from_another_tenants_snapshot() -> None:
    with pytest.raises(ValueError, match="its own tenant"):
        MODEL.predict_batch([(Question(NORTH, "Returns?"), INDEX.snapshot(SOUTH))])


def _passage(doc_id: str) -> Passage:
    return Passage(doc_id, f"{doc_id}#0", "", "text", KnowledgeKind.FAQ, "en", None)


def _snapshot(rows: int) -> TenantSnapshot:
    vectors = np.eye(rows, 8, dtype=np.float32)
    return TenantSnapshot(
        tenant_id="t",
        passages=tuple(_passage(f"d{row}") for row in range(rows)),
        vectors=PassageVectors(vectors, vectors),
        languages=np.asarray(["en"] * rows),
        topics=np.asarray([""] * rows),
        product_rows={},
        general_rows=np.arange(rows, dtype=np.intp),
        document_starts=np.arange(rows, dtype=np.intp),
    )


def test_confidence_is_the_weaker_of_closeness_and_distinctness() -> None:
    config = AnsweringConfig(score_floor=0.8, score_ceiling=0.9, decisive_margin=0.02)
    snapshot = _snapshot(3)

    def hits(*scores: float) -> list[DocumentMatch]:
        """One single-passage document per score."""
        return [
            DocumentMatch((Hit(snapshot.passages[row], row, score, score),), score)
            for row, score in enumerate(scores)
        ]

    assert confidence([], snapshot, config) == 0.0
    assert confidence(hits(0.95), snapshot, config) == 1.0
    assert confidence(hits(0.85), snapshot, config) == pytest.approx(0.5)
    assert confidence(hits(0.95, 0.94), snapshot, config) == pytest.approx(0.5)
    assert confidence(hits(0.95, 0.80), snapshot, config) == 1.0
    assert confidence(hits(0.75, 0.70), snapshot, config) == 0.0
    copies = TenantSnapshot(
        tenant_id="t",
        passages=snapshot.passages,
        vectors=PassageVectors(
            np.ones((3, 8), dtype=np.float32) / np.sqrt(8), snapshot.vectors.headings
        ),
        languages=snapshot.languages,
        topics=snapshot.topics,
        product_rows={},
        general_rows=snapshot.general_rows,
        document_starts=snapshot.document_starts,
    )
    assert confidence(hits(0.95, 0.949), copies, config) == 1.0, "a copy is not a rival"


def test_long_passages_are_cut_to_the_sentences_that_match_the_question() -> None:
    text = (
        "We ship from Hamburg. Parcels are insured. Returns are free within 30 days. "
        "Gift wrapping costs 3 EUR. Our team answers within a day."
    )
    passage = Passage("d", "d#0", "", text, KnowledgeKind.POLICY, "en", None)
    answer = extract_answer("Are returns free?", [passage], max_chars=40)
    assert answer == "Returns are free within 30 days."
    assert extract_answer("Are returns free?", [passage], max_chars=1_000) == text
    chinese = Passage(
        "d", "d#0", "", "我们从杭州发货。退货免费。礼品包装三元。", KnowledgeKind.POLICY, "zh", None
    )
    assert extract_answer("退货要钱吗", [chinese], max_chars=8) == "退货免费。"


def _faq_snapshot(scores: list[list[float]]) -> TenantSnapshot:
    """One document per list; each score is one FAQ heading's cosine to the question ``e0``."""
    passages: list[Passage] = []
    rows: list[np.ndarray] = []
    starts: list[int] = []
    for number, document in enumerate(scores):
        starts.append(len(passages))
        for heading, score in enumerate(document):
            passages.append(
                Passage(
                    f"doc{number}",
                    f"doc{number}#{heading}",
                    f"question {heading}?",
                    "answer",
                    KnowledgeKind.FAQ,
                    "en",
                    None,
                )
            )
            vector = np.zeros(16, dtype=np.float32)
            vector[0], vector[len(passages)] = score, np.sqrt(1 - score**2)
            rows.append(vector)
    matrix = np.stack(rows)
    return TenantSnapshot(
        tenant_id="t",
        passages=tuple(passages),
        vectors=PassageVectors(matrix, matrix),
        languages=np.asarray(["en"] * len(passages)),
        topics=np.asarray([""] * len(passages)),
        product_rows={},
        general_rows=np.arange(len(passages), dtype=np.intp),
        document_starts=np.asarray(starts, dtype=np.intp),
    )


def test_an_article_with_several_close_questions_outranks_one_lucky_phrasing() -> None:
    snapshot = _faq_snapshot([[0.90, 0.88, 0.87], [0.92, 0.50, 0.50]])
    question = np.zeros(16, dtype=np.float32)
    question[0] = 1.0

    def ranked(headings: int) -> list[DocumentMatch]:
        config = AnsweringConfig(document_headings=headings)
        hits = search(
            snapshot, question, product_id=None, language="en", topic=None, config=config, limit=2
        )
        return rank_documents(snapshot, question, hits, language="en", topic=None, config=config)

    by_best_passage = ranked(1)
    assert [match.best.passage.doc_id for match in by_best_passage] == ["doc1", "doc0"]
    by_article = ranked(3)
    assert [match.best.passage.doc_id for match in by_article] == ["doc0", "doc1"]
    bonus = AnsweringConfig().same_language_bonus  # every passage is in the question's language
    assert by_article[0].score == pytest.approx((0.90 + 0.88 + 0.87) / 3 + bonus, abs=1e-5)
    # Only doc1's best passage was retrieved, yet every passage of a candidate is scored.
    assert len(by_article[0].hits) == 3
