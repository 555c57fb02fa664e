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
from typing import Annotated

import numpy as np
import numpy.typing as npt
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import Field, TypeAdapter, ValidationError

from shopstream.events import ProductDeleted, ProductUpserted, ProductUpsertedPayload
from shopstream.kafka_io import topic_partitions
from shopstream.runtime.security import aiokafka_options
from shopstream.settings import KafkaSettings
from shopstream_recommender.state import Item, RecommenderState

logger = logging.getLogger("shopstream.recommender")

Embed = Callable[[Sequence[str]], Awaitable[npt.NDArray[np.float32]]]
CatalogueEvent = Annotated[ProductUpserted | ProductDeleted, Field(discriminator="event_type")]
catalogue_adapter: TypeAdapter[ProductUpserted | ProductDeleted] = TypeAdapter(CatalogueEvent)
MAX_ATTRIBUTES_EMBEDDED = 20
MAX_TEXT_CHARS = 1_000
TOPIC_WAIT_SECONDS = 10.0


async def partitions_of(
    consumer: AIOKafkaConsumer, topic: str, within: float = TOPIC_WAIT_SECONDS
) -> list[TopicPartition]:
    """The topic's partitions, waiting a little for a topic created a moment ago to show up
    in the cluster's metadata."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await topic_partitions(consumer, topic)
        except LookupError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


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
    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        state: RecommenderState,
        *,
        embed_batch: int,
        embed: Embed | None = None,
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._state = state
        self.embed = embed
        """Set before `start()`; None keeps the catalogue without vectors."""
        self._embed_batch = embed_batch
        self._pending: dict[tuple[str, str], str] = {}
        self._embedded_texts: dict[tuple[str, str], int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.stats = CatalogueStats()

    @property
    def pending_embeddings(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        """Read the topic to its current end (the restore), then follow it in the background."""
        started = time.perf_counter()
        consumer = AIOKafkaConsumer(
            **aiokafka_options(self._kafka),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        self._consumer = consumer
        partitions = await partitions_of(consumer, self._topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if ends[tp] > 0}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500, max_records=2_000)
            for records in batches.values():
                self.apply(records)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        self.stats.restore_seconds = time.perf_counter() - started
        logger.info(
            "catalogue restored",
            extra={
                "products": self.stats.applied,
                "rejected": self.stats.rejected,
                "seconds": round(self.stats.restore_seconds, 3),
            },
        )
        self._task = asyncio.create_task(self._follow(consumer), name="catalogue-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=200, max_records=self._embed_batch)
                for records in batches.values():
                    self.apply(records)
                if self._pending and (not batches or len(self._pending) >= self._embed_batch):
                    await self.embed_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The table must keep following: log, back off, and carry on.
                logger.exception("catalogue follower failed; retrying")
                await asyncio.sleep(1.0)

    def apply(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            if record.value is None:
                self._apply_tombstone(record.key)
                continue
            try:
                event = catalogue_adapter.validate_json(record.value)
            except ValidationError:
                self.stats.rejected += 1
                logger.warning(
                    "unusable product record skipped",
                    extra={"topic": record.topic, "offset": record.offset},
                )
                continue
            self.stats.applied += 1
            key = (event.tenant_id, event.payload.product_id)
            if isinstance(event, ProductDeleted):
                self._state.delete_product(*key)
                self._pending.pop(key, None)
                self._embedded_texts.pop(key, None)
                continue
            self._state.upsert_product(*key, item_of(event.payload))
            text = item_text(event.payload)
            if self.embed is not None and self._embedded_texts.get(key) != hash(text):
                self._pending[key] = text

    def _apply_tombstone(self, key: bytes | None) -> None:
        tenant, _, product = (key or b"").decode("utf-8", errors="replace").partition(":")
        if tenant and product:
            self._state.delete_product(tenant, product)
            self._pending.pop((tenant, product), None)
            self._embedded_texts.pop((tenant, product), None)

    async def embed_pending(self) -> None:
        """Embed up to one batch of new or changed product texts."""
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
