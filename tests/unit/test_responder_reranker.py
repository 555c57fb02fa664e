"""The per-tenant article classifier: trained on a tenant's own headings, one per snapshot."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from shopstream.events import KnowledgeKind
from shopstream_responder.answering import Question, rank_documents, rerank, search
from shopstream_responder.config import AnsweringConfig, RerankConfig
from shopstream_responder.knowledge import (
    Document,
    DocumentKey,
    KnowledgeIndex,
    Source,
    TenantSnapshot,
    chunk_document,
)
from shopstream_responder.model import ResponderModel
from shopstream_responder.reranker import train
from support.responder import HashingEmbedder, hashing_model, hashing_settings

pytestmark = pytest.mark.unit

SETTINGS = hashing_settings()
MODEL = hashing_model()
MODEL.load()

GET_INVOICE = (
    "How do I download my invoice?",
    "Where can I get a copy of my invoice?",
    "I need the invoice for my purchase",
)
CHECK_INVOICE = (
    "How can I check the status of an invoice?",
    "Is my invoice paid?",
    "I want to see whether the invoice is settled",
)


def _faq(
    tenant: str, doc_id: str, questions: Sequence[str], answers: Sequence[str] = ()
) -> Document:
    """An FAQ article; each question's answer is `answers`' entry, else a placeholder."""
    answers = list(answers) or [f"Answer of {doc_id}."] * len(questions)
    body = "\n\n".join(f"Q: {q}\nA: {a}" for q, a in zip(questions, answers, strict=True))
    return Document(
        key=DocumentKey(tenant, Source.KNOWLEDGE, doc_id),
        title=doc_id,
        passages=chunk_document(doc_id, body, SETTINGS.chunking),
        kind=KnowledgeKind.FAQ,
        locale="en",
    )


def _policy(tenant: str, doc_id: str, text: str) -> Document:
    return Document(
        key=DocumentKey(tenant, Source.KNOWLEDGE, doc_id),
        title=doc_id,
        passages=chunk_document(doc_id, text, SETTINGS.chunking),
        kind=KnowledgeKind.POLICY,
        locale="en",
    )


def _index(*documents: Document) -> KnowledgeIndex:
    index = KnowledgeIndex()
    _upsert(index, *documents)
    return index


def _upsert(index: KnowledgeIndex, *documents: Document) -> None:
    for document, vectors in zip(documents, MODEL.embed_documents(list(documents)), strict=True):
        index.upsert(document, vectors)


def _snapshot(index: KnowledgeIndex, tenant: str) -> TenantSnapshot:
    snapshot = index.snapshot(tenant)
    assert snapshot is not None
    return snapshot


def _probabilities(snapshot: TenantSnapshot, text: str) -> dict[str, float]:
    classifier = train(snapshot, RerankConfig())
    assert classifier is not None
    [vectors] = MODEL.embed_questions([Question("t", text)])
    query = vectors.features
    return {
        snapshot.passages[start].doc_id: p
        for start, p in classifier.probabilities(query, text).items()
    }


def test_the_classifier_learns_the_articles_from_their_own_headings() -> None:
    index = _index(
        _faq("t", "get-invoice", GET_INVOICE),
        _faq("t", "check-invoice", CHECK_INVOICE),
        _policy("t", "returns", "Returns are free within 30 days of delivery."),
    )
    snapshot = _snapshot(index, "t")
    download = _probabilities(snapshot, "can I download a copy of the invoice")
    paid = _probabilities(snapshot, "has my invoice been paid")
    # Only FAQ articles are classes: a policy has one heading, its title.
    assert set(download) == {"get-invoice", "check-invoice"}
    assert sum(download.values()) == pytest.approx(1.0)
    assert download["get-invoice"] > download["check-invoice"]
    assert paid["check-invoice"] > paid["get-invoice"]


def test_the_answers_teach_the_classifier_words_no_heading_uses() -> None:
    # Neither article's headings say "pdf" or "settled"; only the answers do.
    get_invoice = _faq(
        "t",
        "get-invoice",
        ("I need my invoice", "invoice for my purchase"),
        (
            "Open Orders and press the pdf button to save the invoice.",
            "Every invoice is a pdf file you can save or print.",
        ),
    )
    check_invoice = _faq(
        "t",
        "check-invoice",
        ("status of my invoice", "look at my invoice"),
        (
            "Billing shows whether each invoice is settled or open.",
            "An invoice marked settled needs nothing more from you.",
        ),
    )
    snapshot = _snapshot(_index(get_invoice, check_invoice), "t")
    question = "invoice pdf"
    [vectors] = MODEL.embed_questions([Question("t", question)])
    query = vectors.features

    def get_share(passage_weight: float) -> float:
        classifier = train(snapshot, RerankConfig(passage_weight=passage_weight))
        assert classifier is not None
        by_doc = {
            snapshot.passages[start].doc_id: p
            for start, p in classifier.probabilities(query, question).items()
        }
        return by_doc["get-invoice"]

    headings_only, with_answers = get_share(0.0), get_share(0.3)
    assert with_answers > 0.5
    assert with_answers > headings_only + 0.05


def test_no_classifier_without_two_articles_or_when_disabled() -> None:
    one_article = _index(
        _faq("t", "get-invoice", GET_INVOICE), _policy("t", "returns", "Returns are free.")
    )
    assert train(_snapshot(one_article, "t"), RerankConfig()) is None
    two = _snapshot(
        _index(_faq("t", "get-invoice", GET_INVOICE), _faq("t", "check", CHECK_INVOICE)), "t"
    )
    assert train(two, RerankConfig(max_headings=5)) is None
    disabled = AnsweringConfig(rerank=RerankConfig(enabled=False))
    model = ResponderModel(SETTINGS.model, disabled, MODEL.rules, embedder=HashingEmbedder())
    model.load()
    assert model._answerer is not None
    assert model._answerer.article_classifier(two) is None


def test_each_tenant_has_its_own_classifier_rebuilt_when_its_knowledge_changes() -> None:
    index = _index(
        _faq("a", "get-invoice", GET_INVOICE),
        _faq("a", "check-invoice", CHECK_INVOICE),
        _faq("b", "lounge", ("Where is the lounge?", "Is the lounge open?")),
        _faq("b", "parking", ("Where can I park?", "Is parking free?")),
    )
    answerer = MODEL._answerer
    assert answerer is not None
    first_a = answerer.article_classifier(_snapshot(index, "a"))
    first_b = answerer.article_classifier(_snapshot(index, "b"))
    assert first_a is not None
    assert first_b is not None
    assert answerer.article_classifier(_snapshot(index, "a")) is first_a
    labels_b = {_snapshot(index, "b").passages[int(start)].doc_id for start in first_b.starts}
    assert labels_b == {"lounge", "parking"}

    _upsert(index, _faq("a", "gift-cards", ("Do you sell gift cards?", "Gift card balance?")))
    second_a = answerer.article_classifier(_snapshot(index, "a"))
    assert second_a is not None
    assert second_a is not first_a
    snapshot_a = _snapshot(index, "a")
    labels_a = {snapshot_a.passages[int(start)].doc_id for start in second_a.starts}
    assert labels_a == {"get-invoice", "check-invoice", "gift-cards"}
    # The other tenant's model is untouched by the change.
    assert answerer.article_classifier(_snapshot(index, "b")) is first_b


def test_retrieval_alone_ranks_when_a_top_document_is_not_an_article() -> None:
    index = _index(
        _faq("t", "get-invoice", GET_INVOICE),
        _faq("t", "check-invoice", CHECK_INVOICE),
        _policy("t", "invoice-policy", "Invoices are sent by email after every purchase."),
    )
    snapshot = _snapshot(index, "t")
    config = AnsweringConfig()
    text = "invoice"
    [vectors] = MODEL.embed_questions([Question("t", text)])
    query = vectors.retrieval
    hits = search(
        snapshot, query, product_id=None, language="en", topic=None, config=config, limit=20
    )
    matches = rank_documents(snapshot, query, hits, language="en", topic=None, config=config)
    classifier = train(snapshot, config.rerank)
    assert classifier is not None
    probabilities = classifier.probabilities(vectors.features, text)
    by_id = {match.best.passage.doc_id: match for match in matches}
    policy, get, check = by_id["invoice-policy"], by_id["get-invoice"], by_id["check-invoice"]
    assert rerank([get, policy, check], snapshot, probabilities, weight=1.0) is None
    assert rerank([policy, get, check], snapshot, probabilities, weight=1.0) is None
    blended = rerank([get, check, policy], snapshot, probabilities, weight=1.0)
    assert blended is not None
    # The policy is not one of the classifier's articles: it drops out of the blend.
    assert {match.best.passage.doc_id for match in blended} == {"get-invoice", "check-invoice"}
    expected = {
        match.best.passage.doc_id: match.score
        + probabilities[snapshot.document_rows(match.best.row).start]
        for match in (get, check)
    }
    assert [match.score for match in blended] == sorted(expected.values(), reverse=True)
