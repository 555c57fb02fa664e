"""The catalogue as a global table: every replica reads the whole compacted products topic.

Outside the consumer group (each replica needs every product, whichever users it owns): on start
the topic is read to the end offsets found then, and a background task follows it afterwards.
New or changed product texts are embedded in batches by the same task, through the service's
inference thread, never on the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from aiokafka import ConsumerRecord

from shopstream.events import ProductUpsertedPayload, parse_product_record
from shopstream.runtime.tables import TopicFollower
from shopstream.settings import KafkaSettings
from shopstream_recommender.state import Item, RecommenderState

logger = logging.getLogger("shopstream.recommender")

Embed = Callable[[Sequence[str]], Awaitable[npt.NDArray[np.float32]]]
MAX_ATTRIBUTES_EMBEDDED = 20
MAX_TEXT_CHARS = 1_000


def item_text(payload: ProductUpsertedPayload) -> str:
    """The passage embedded for a product: what a shopper sees when comparing items."""
    parts = [payload.title]
    parts += [value for value in (payload.brand, payload.category) if value]
    parts += [
        f"{name}: {value}"
        for name, value in list(payload.attributes.items())[:MAX_ATTRIBUTES_EMBEDDED]
    ]
    return " | ".join(parts)[:MAX_TEXT_CHARS]


def item_of(payload: ProductUpsertedPayload) -> Item:
    return Item(title=payload.title, category=payload.category, available=payload.available)


@dataclass
class CatalogueStats:
    applied: int = 0
    rejected: int = 0
    embedded: int = 0
    restore_seconds: float = 0.0


class CatalogueFollower:
    """The catalogue table on top of the shared `TopicFollower` (which does the consuming)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        state: RecommenderState,
        *,
        embed_batch: int,
        embed: Embed | None = None,
        restore_seconds: float = 600.0,
    ) -> None:
        self._state = state
        self.embed = embed
        """Set before `start()`; None keeps the catalogue without vectors."""
        self._embed_batch = embed_batch
        self._restore_limit = restore_seconds
        self._pending: dict[tuple[str, str], str] = {}
        self._embedded_texts: dict[tuple[str, str], int] = {}
        self._embedding = asyncio.Lock()
        self._restored = False
        self._background: asyncio.Task[None] | None = None
        self._follower = TopicFollower(
            kafka, [topic], self._on_records, name="recommender-catalogue", max_records=embed_batch
        )
        self.stats = CatalogueStats()

    @property
    def pending_embeddings(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        """Read the topic to its current end (the restore), then follow it in the background;
        texts read during the restore are embedded in the background too."""
        started = time.perf_counter()
        await self._follower.start()
        await self._follower.wait_caught_up(self._restore_limit)
        self._restored = True
        self.stats.restore_seconds = time.perf_counter() - started
        logger.info(
            "catalogue restored",
            extra={
                "products": self.stats.applied,
                "rejected": self.stats.rejected,
                "seconds": round(self.stats.restore_seconds, 3),
            },
        )
        self._background = asyncio.create_task(self._embed_all(), name="catalogue-embedding")

    async def stop(self) -> None:
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
            self._background = None
        await self._follower.stop()

    async def _on_records(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        self.apply(records)
        # After the restore: embed once a burst ends (a short poll) or a batch is waiting.
        burst_over = len(records) < self._embed_batch
        if self._restored and self._pending and (burst_over or self.pending_full):
            await self.embed_pending()

    @property
    def pending_full(self) -> bool:
        return len(self._pending) >= self._embed_batch

    async def _embed_all(self) -> None:
        while self._pending:
            try:
                await self.embed_pending()
            except Exception:
                # Keep the catalogue usable without vectors rather than stop the service.
                logger.exception("embedding the restored catalogue failed; retrying in 1 s")
                await asyncio.sleep(1.0)

    def apply(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            change = parse_product_record(record.key, record.value)
            if record.value is not None:  # the stats count events; a tombstone is none
                self.stats.applied += change is not None
                self.stats.rejected += change is None
            if change is None:
                logger.warning(
                    "unusable product record skipped",
                    extra={"topic": record.topic, "offset": record.offset},
                )
                continue
            key = (change.tenant_id, change.product_id)
            if change.product is None:
                self._state.delete_product(*key)
                self._pending.pop(key, None)
                self._embedded_texts.pop(key, None)
                continue
            self._state.upsert_product(*key, item_of(change.product))
            text = item_text(change.product)
            if self.embed is not None and self._embedded_texts.get(key) != hash(text):
                self._pending[key] = text

    async def embed_pending(self) -> None:
        """Embed up to one batch of new or changed product texts."""
        async with self._embedding:
            await self._embed_batch_now()

    async def _embed_batch_now(self) -> None:
        if self.embed is None or not self._pending:
            return
        keys = list(self._pending)[: self._embed_batch]
        texts = [self._pending[key] for key in keys]
        vectors = await self.embed(texts)
        for key, text, vector in zip(keys, texts, vectors, strict=True):
            # A newer text may have arrived while this batch was being embedded.
            if self._pending.get(key) == text:
                del self._pending[key]
                self._state.put_vector(*key, vector)
                self._embedded_texts[key] = hash(text)
        self.stats.embedded += len(keys)
