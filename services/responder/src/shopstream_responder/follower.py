"""Keeps every replica's knowledge index in step with the compacted knowledge and catalogue topics.

The topics are read like global tables (``shopstream.runtime.tables``): all partitions,
outside the consumer group, from the beginning, and then followed for as long as the service
runs, so an upsert or a deletion reaches the next question within a poll and an embedding pass.
Start-up waits until the end offsets seen on entry are reached, so a restarted replica answers
from the full knowledge again.

A record that cannot be used is logged and counted, not dead-lettered: every replica reads every
record, so each would dead-letter the same one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from aiokafka import ConsumerRecord
from pydantic import Field, TypeAdapter, ValidationError

from shopstream.events import (
    KnowledgeDeleted,
    KnowledgeUpserted,
    parse_key,
    parse_product_record,
)
from shopstream.runtime.tables import TopicFollower
from shopstream_responder.config import ResponderSettings
from shopstream_responder.knowledge import (
    Document,
    DocumentKey,
    KnowledgeIndex,
    PassageVectors,
    Source,
    chunk_document,
    product_document,
)
from shopstream_responder.metrics import ResponderMetrics

logger = logging.getLogger("shopstream.responder.knowledge")

KnowledgeEvent = Annotated[KnowledgeUpserted | KnowledgeDeleted, Field(discriminator="event_type")]
_knowledge_event: TypeAdapter[KnowledgeUpserted | KnowledgeDeleted] = TypeAdapter(KnowledgeEvent)

EmbedDocuments = Callable[[Sequence[Document]], Awaitable[list[PassageVectors]]]


@dataclass(frozen=True, slots=True)
class Deletion:
    key: DocumentKey


Change = Document | Deletion


def _shown(key: bytes | None) -> str:
    return (key or b"").decode("utf-8", errors="replace")[:64]


class KnowledgeChanges:
    """Turns records of the knowledge and catalogue topics into document changes."""

    def __init__(self, settings: ResponderSettings, metrics: ResponderMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._sources = {settings.topics.knowledge: Source.KNOWLEDGE}
        if settings.product_facts:
            self._sources[settings.topics.products] = Source.CATALOG

    @property
    def topics(self) -> list[str]:
        return list(self._sources)

    def change_of(self, topic: str, key: bytes | None, value: bytes | None) -> Change | None:
        source = self._sources[topic]
        if source is Source.CATALOG:
            return self._product_change(key, value)
        if value is None:
            return self._tombstone(key)
        try:
            event = _knowledge_event.validate_json(value)
        except ValidationError as error:
            self._reject("invalid_event", topic, type(error).__name__)
            return None
        document_key = DocumentKey(event.tenant_id, source, event.payload.doc_id)
        if isinstance(event, KnowledgeDeleted):
            return Deletion(document_key)
        payload = event.payload
        return Document(
            key=document_key,
            title=payload.title,
            passages=chunk_document(payload.title, payload.body, self._settings.chunking),
            kind=payload.kind,
            locale=payload.locale,
            product_id=payload.product_id,
        )

    def _product_change(self, key: bytes | None, value: bytes | None) -> Change | None:
        change = parse_product_record(key, value)
        if change is None:
            reason = "invalid_event" if value is not None else "bad_tombstone_key"
            self._reject(reason, self._settings.topics.products, _shown(key))
            return None
        if change.product is None:
            return Deletion(DocumentKey(change.tenant_id, Source.CATALOG, change.product_id))
        return product_document(change.tenant_id, change.product, self._settings.chunking)

    def _tombstone(self, key: bytes | None) -> Change | None:
        parsed = parse_key(key)
        if parsed is None:
            self._reject("bad_tombstone_key", Source.KNOWLEDGE.value, _shown(key))
            return None
        tenant_id, doc_id = parsed
        return Deletion(DocumentKey(tenant_id, Source.KNOWLEDGE, doc_id))

    def _reject(self, reason: str, topic: str, detail: str) -> None:
        self._metrics.knowledge_records.labels("rejected").inc()
        logger.warning(
            "unusable knowledge record skipped",
            extra={"reason": reason, "topic": topic, "detail": detail},
        )


class KnowledgeFollower:
    """Reads the knowledge (and catalogue) topics into the index and keeps following them, on
    the shared ``runtime.tables.TopicFollower`` (which re-reads a batch whose apply failed)."""

    def __init__(
        self,
        settings: ResponderSettings,
        index: KnowledgeIndex,
        embed: EmbedDocuments,
        metrics: ResponderMetrics,
        *,
        poll_timeout_ms: int = 500,
        max_records: int = 512,
    ) -> None:
        self._index = index
        self._embed = embed
        self._metrics = metrics
        self._changes = KnowledgeChanges(settings, metrics)
        self._follower = TopicFollower(
            settings.kafka,
            self._changes.topics,
            self.apply,
            name="responder-knowledge",
            poll_timeout_ms=poll_timeout_ms,
            max_records=max_records,
        )

    @property
    def topics(self) -> list[str]:
        """The topics followed: knowledge, and the catalogue unless product facts are off."""
        return self._changes.topics

    async def start(self) -> None:
        """Assign every partition from the beginning and start following in the background."""
        await self._follower.start()

    async def wait_caught_up(self, limit_seconds: float) -> float:
        """Wait until the end offsets seen on start are read and embedded; return the seconds."""
        seconds = await self._follower.wait_caught_up(limit_seconds)
        self._metrics.catch_up_seconds.set(seconds)
        stats = self._index.stats()
        logger.info(
            "knowledge read to its end",
            extra={
                "tenants": stats.tenants,
                "documents": stats.documents,
                "passages": stats.passages,
                "seconds": round(seconds, 3),
            },
        )
        return seconds

    async def stop(self) -> None:
        await self._follower.stop()

    async def apply(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Apply records in order; the last change of a document within the batch wins."""
        latest: dict[DocumentKey, Change] = {}
        for record in records:
            change = self._changes.change_of(record.topic, record.key, record.value)
            if change is not None:
                latest.pop(change.key, None)  # keep the batch's order of last changes
                latest[change.key] = change
        upserts: list[Document] = []
        for change in latest.values():
            if isinstance(change, Deletion):
                if self._index.delete(change.key):
                    self._metrics.knowledge_records.labels("deleted").inc()
                continue
            current = self._index.document(change.key)
            if current is not None and current.content_signature() == change.content_signature():
                self._metrics.knowledge_records.labels("unchanged").inc()
                continue
            upserts.append(change)
        if upserts:
            for document, vectors in zip(upserts, await self._embed_all(upserts), strict=True):
                if vectors is None:
                    continue
                self._index.upsert(document, vectors)
                self._metrics.knowledge_records.labels("upserted").inc()
        self._metrics.observe_index(self._index)

    async def _embed_all(self, documents: list[Document]) -> list[PassageVectors | None]:
        try:
            return list(await self._embed(documents))
        except Exception:  # retried document by document below
            logger.exception("embedding a knowledge batch failed; retrying per document")
        vectors: list[PassageVectors | None] = []
        for document in documents:
            try:
                vectors.extend(await self._embed([document]))
            except Exception:  # one bad document must not stall the table
                self._metrics.knowledge_records.labels("rejected").inc()
                logger.exception(
                    "knowledge document could not be embedded; skipped",
                    extra={"tenant_id": document.key.tenant_id, "doc_id": document.key.doc_id},
                )
                vectors.append(None)
        return vectors
