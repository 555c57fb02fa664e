"""Passages, product facts and the per-tenant index of the responder."""

from __future__ import annotations

import numpy as np
import pytest

from shopstream.events import Intent, KnowledgeKind, ProductUpsertedPayload
from shopstream_responder.config import ChunkingConfig
from shopstream_responder.knowledge import (
    Chunk,
    Document,
    DocumentKey,
    KnowledgeIndex,
    PassageVectors,
    Source,
    chunk_document,
    product_document,
)
from shopstream_responder.text import detect_locale, mask_digit_runs, split_sentences

pytestmark = pytest.mark.unit

CONFIG = ChunkingConfig()


def test_faq_questions_become_the_headings_of_their_answers() -> None:
    body = (
        "Opening words of the article.\n\n"
        "Q: How long does delivery take?\nA: Two to four business days.\n\n"
        "Express delivery takes one day and costs 9 EUR extra.\n\n"
        "问：可以开发票吗？\n答：可以，下单时填写抬头即可，电子发票会发送到您的邮箱。"
    )
    chunks = chunk_document("Shipping", body, ChunkingConfig(min_chars=10))
    assert [chunk.heading for chunk in chunks] == [
        "Shipping",
        "How long does delivery take?",
        "How long does delivery take?",
        "可以开发票吗？",
    ]
    assert chunks[1].text == "Two to four business days."
    assert chunks[2].text.startswith("Express delivery"), "a follow-up paragraph keeps its Q"
    assert chunks[3].text.startswith("可以，下单时"), "the answer marker is dropped"
    assert chunks[1].embedding_text() == "How long does delivery take?\nTwo to four business days."


def test_long_paragraphs_split_between_sentences_and_short_ones_join_the_next() -> None:
    sentence = "Every item can be returned within thirty days of delivery. "
    chunks = chunk_document("Returns", "Returns\n\n" + sentence * 20, ChunkingConfig(max_chars=200))
    assert len(chunks) > 1
    assert all(len(chunk.text) <= 200 for chunk in chunks)
    assert chunks[0].text.startswith("Returns Every item"), "a heading line joins its paragraph"
    assert all(chunk.text.endswith(".") for chunk in chunks), "whole sentences only"
    chinese = chunk_document("退货", "签收后三十天内可以退货。" * 40, ChunkingConfig(max_chars=120))
    assert all(len(chunk.text) * 2 <= 120 for chunk in chinese), "a Han character counts twice"
    assert all(chunk.text.endswith("。") for chunk in chinese)


def test_an_empty_body_indexes_the_title_and_huge_documents_are_capped() -> None:
    assert chunk_document("Gift cards", "", CONFIG) == (Chunk("", "Gift cards"),)
    capped = chunk_document(
        "Long", "A sentence here.\n\n" * 50, ChunkingConfig(min_chars=0, max_passages_per_doc=3)
    )
    assert len(capped) == 3


def test_product_facts_are_written_in_the_products_language() -> None:
    product = ProductUpsertedPayload.model_validate(
        {
            "product_id": "kettle-1",
            "title": "不锈钢电水壶",
            "locale": "zh-CN",
            "brand": "暖家",
            "attributes": {"容量": "1.7升", "功率": "1800W"},
            "price": {"amount": 199, "currency": "CNY"},
            "available": False,
            "description": "双层防烫外壳。",
        }
    )
    document = product_document("shop-a", product, CONFIG)
    assert document.key == DocumentKey("shop-a", Source.CATALOG, "kettle-1")
    assert document.key.citation_id == "product:kettle-1"
    assert document.product_id == "kettle-1"
    facts = document.passages[0].text
    assert "品牌：暖家" in facts
    assert "容量：1.7升" in facts
    assert "价格：199 CNY" in facts
    assert "库存：缺货" in facts
    assert document.passages[-1].text.endswith("双层防烫外壳。")
    assert all(chunk.heading == "不锈钢电水壶" for chunk in document.passages)


def _document(
    tenant: str, doc_id: str, texts: list[str], product_id: str | None = None
) -> Document:
    return Document(
        key=DocumentKey(tenant, Source.KNOWLEDGE, doc_id),
        title=doc_id,
        passages=tuple(Chunk(doc_id, text) for text in texts),
        kind=KnowledgeKind.FAQ,
        locale="en",
        product_id=product_id,
    )


def _vectors(count: int, dim: int = 4) -> PassageVectors:
    matrix = np.eye(count, dim, dtype=np.float32)
    return PassageVectors(matrix, matrix.copy())


def test_the_index_keeps_tenants_apart_and_applies_updates_and_deletions() -> None:
    index = KnowledgeIndex(topic_of=lambda heading: Intent.SHIPPING if "ship" in heading else None)
    index.upsert(_document("a", "ship", ["one", "two"]), _vectors(2))
    index.upsert(_document("b", "ship", ["other shop"]), _vectors(1))
    first = index.snapshot("a")
    assert first is not None
    assert [p.passage_id for p in first.passages] == ["ship#0", "ship#1"]
    assert list(first.topics) == ["shipping", "shipping"]
    assert list(first.languages) == ["en", "en"]
    assert index.snapshot("c") is None

    index.upsert(_document("a", "ship", ["replaced"]), _vectors(1))
    index.upsert(_document("a", "faq", ["more"]), _vectors(1))
    second = index.snapshot("a")
    assert second is not None
    assert [p.text for p in second.passages] == ["replaced", "more"]
    assert [p.text for p in first.passages] == ["one", "two"], "an old snapshot never changes"
    assert not first.vectors.bodies.flags.writeable

    assert index.delete(DocumentKey("a", Source.KNOWLEDGE, "ship"))
    assert not index.delete(DocumentKey("a", Source.CATALOG, "ship")), "sources never collide"
    third = index.snapshot("a")
    assert third is not None
    assert [p.text for p in third.passages] == ["more"]
    stats = index.stats()
    assert (stats.tenants, stats.documents, stats.passages) == (2, 2, 2)
    assert stats.vector_bytes == 2 * 2 * 4 * 4

    index.delete(DocumentKey("a", Source.KNOWLEDGE, "faq"))
    assert index.snapshot("a") is None
    assert index.tenants() == ["b"]


def test_a_named_product_narrows_the_search_to_its_facts_and_the_general_knowledge() -> None:
    index = KnowledgeIndex()
    index.upsert(_document("a", "policy", ["general"]), _vectors(1))
    index.upsert(_document("a", "kettle", ["kettle fact"], product_id="kettle"), _vectors(1))
    index.upsert(_document("a", "toaster", ["toaster fact"], product_id="toaster"), _vectors(1))
    snapshot = index.snapshot("a")
    assert snapshot is not None

    def texts(product: str) -> list[str]:
        rows = snapshot.searchable_rows(product)
        assert rows is not None
        return [snapshot.passages[row].text for row in rows]

    assert snapshot.searchable_rows(None) is None, "no product named: every passage"
    assert texts("kettle") == ["general", "kettle fact"]
    assert texts("unknown") == ["general"]


def test_vectors_must_match_the_passages() -> None:
    index = KnowledgeIndex()
    with pytest.raises(ValueError, match="2 passages"):
        index.upsert(_document("a", "x", ["one", "two"]), _vectors(1))


def test_text_helpers_handle_chinese_and_english() -> None:
    assert detect_locale("我可以在多少天内申请无理由退货？") == "zh"
    assert detect_locale("Where is my order 123?") == "en"
    assert detect_locale("iPhone 15 的电池多大？") == "zh"
    assert split_sentences("第一句。第二句！Third one. Fourth? 3.5 kg stays") == [
        "第一句。",
        "第二句！",
        "Third one.",
        "Fourth?",
        "3.5 kg stays",
    ]
    assert mask_digit_runs("order #113542617735902 of 12 items", 5) == "order   of 12 items"
    assert mask_digit_runs("order 113542617735902", 0) == "order 113542617735902"
