"""How records of the knowledge and catalogue topics change the index (no broker needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from shopstream.events import KnowledgeDeleted, KnowledgeUpserted, ProductDeleted, ProductUpserted
from shopstream_responder.config import ResponderSettings
from shopstream_responder.follower import KnowledgeFollower
from shopstream_responder.knowledge import Document, KnowledgeIndex, PassageVectors
from shopstream_responder.metrics import ResponderMetrics
from support.responder import event_record, record

pytestmark = pytest.mark.unit

SETTINGS = ResponderSettings(create_topics=False)
KNOWLEDGE = SETTINGS.topics.knowledge
PRODUCTS = SETTINGS.topics.products


class CountingEmbedder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.documents: list[str] = []
        self.fail_on = fail_on

    async def __call__(self, documents: Sequence[Document]) -> list[PassageVectors]:
        if self.fail_on is not None and any(self.fail_on in d.key.doc_id for d in documents):
            raise RuntimeError("encoder failed")
        self.documents += [document.key.doc_id for document in documents]
        return [
            PassageVectors(
                np.ones((len(d.passages), 4), dtype=np.float32),
                np.ones((len(d.passages), 4), dtype=np.float32),
            )
            for d in documents
        ]


def follower(
    embed: CountingEmbedder, settings: ResponderSettings = SETTINGS
) -> tuple[KnowledgeFollower, KnowledgeIndex, ResponderMetrics]:
    index = KnowledgeIndex()
    metrics = ResponderMetrics(CollectorRegistry())
    return KnowledgeFollower(settings, index, embed, metrics), index, metrics


def upsert(
    doc_id: str, body: str = "Returns are free within 30 days.", tenant: str = "a"
) -> KnowledgeUpserted:
    return KnowledgeUpserted(
        tenant_id=tenant, payload={"doc_id": doc_id, "title": doc_id, "body": body}
    )


def texts(index: KnowledgeIndex, tenant: str = "a") -> dict[str, list[str]]:
    snapshot = index.snapshot(tenant)
    result: dict[str, list[str]] = {}
    for passage in snapshot.passages if snapshot else ():
        result.setdefault(passage.doc_id, []).append(passage.text)
    return result


def count(metrics: ResponderMetrics, status: str) -> float:
    return metrics.knowledge_records.labels(status)._value.get()


def test_upserts_deletions_and_tombstones_reach_the_index() -> None:
    embed = CountingEmbedder()
    knowledge, index, metrics = follower(embed)
    asyncio.run(
        knowledge.apply(
            [
                event_record(KNOWLEDGE, upsert("returns")),
                event_record(KNOWLEDGE, upsert("shipping", "Delivery takes 2 days.")),
                event_record(KNOWLEDGE, upsert("returns", tenant="b")),
            ]
        )
    )
    assert texts(index) == {
        "returns": ["Returns are free within 30 days."],
        "shipping": ["Delivery takes 2 days."],
    }
    assert texts(index, "b") == {"returns": ["Returns are free within 30 days."]}
    assert embed.documents == ["returns", "shipping", "returns"], "one embedding call per batch"

    deleted = KnowledgeDeleted(tenant_id="a", payload={"doc_id": "shipping"})
    asyncio.run(
        knowledge.apply(
            [event_record(KNOWLEDGE, deleted), record(KNOWLEDGE, "b:returns", None, offset=9)]
        )
    )
    assert texts(index) == {"returns": ["Returns are free within 30 days."]}
    assert index.snapshot("b") is None, "a tombstone deletes the tenant's document"
    assert count(metrics, "deleted") == 2
    assert metrics.passages._value.get() == 1


def test_the_last_change_of_a_document_in_a_batch_wins_and_unchanged_ones_are_skipped() -> None:
    embed = CountingEmbedder()
    knowledge, index, metrics = follower(embed)
    asyncio.run(
        knowledge.apply(
            [
                event_record(KNOWLEDGE, upsert("returns", "Old text.")),
                event_record(
                    KNOWLEDGE, KnowledgeDeleted(tenant_id="a", payload={"doc_id": "returns"})
                ),
                event_record(KNOWLEDGE, upsert("returns", "New text.")),
            ]
        )
    )
    assert texts(index) == {"returns": ["New text."]}
    assert embed.documents == ["returns"], "superseded versions are never embedded"
    asyncio.run(knowledge.apply([event_record(KNOWLEDGE, upsert("returns", "New text."))]))
    assert embed.documents == ["returns"], "the same content again costs no encoder time"
    assert count(metrics, "unchanged") == 1


def test_products_become_facts_and_bad_records_are_counted_not_fatal() -> None:
    embed = CountingEmbedder()
    knowledge, index, metrics = follower(embed)
    product = ProductUpserted(
        tenant_id="a",
        payload={"product_id": "kettle", "title": "Kettle", "attributes": {"capacity": "1.7 l"}},
    )
    asyncio.run(
        knowledge.apply(
            [
                event_record(PRODUCTS, product),
                record(KNOWLEDGE, "a:x", b"{not json"),
                event_record(KNOWLEDGE, product),
                record(KNOWLEDGE, "no-colon", None),
            ]
        )
    )
    assert texts(index) == {"product:kettle": ["capacity: 1.7 l\nAvailability: in stock"]}
    assert count(metrics, "rejected") == 3
    gone = ProductDeleted(tenant_id="a", payload={"product_id": "kettle"})
    asyncio.run(knowledge.apply([event_record(PRODUCTS, gone)]))
    assert index.snapshot("a") is None


def test_product_facts_can_be_switched_off() -> None:
    knowledge, _, _ = follower(CountingEmbedder(), ResponderSettings(product_facts=False))
    assert knowledge.topics == [SETTINGS.topics.knowledge]


def test_a_document_the_encoder_cannot_embed_is_skipped_alone() -> None:
    embed = CountingEmbedder(fail_on="poison")
    knowledge, index, metrics = follower(embed)
    asyncio.run(
        knowledge.apply(
            [event_record(KNOWLEDGE, upsert("returns")), event_record(KNOWLEDGE, upsert("poison"))]
        )
    )
    assert list(texts(index)) == ["returns"]
    assert count(metrics, "rejected") == 1
