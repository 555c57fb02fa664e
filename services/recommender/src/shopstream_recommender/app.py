"""The recommender service: state, catalogue follower, replay and handler wired onto the runtime.

Start-up, in order: topics, item encoder, the catalogue read in full (global table), the
co-partitioning check, the activity replay up to the group's committed offsets (restart
recovery), then the consumer group on activity + requests. Each later assignment of activity
partitions catches the state up the same way (`ActivityCatchUp`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol

import numpy as np
import numpy.typing as npt
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry, Gauge, Histogram

from shopstream.events import Lineage
from shopstream.kafka_io import topic_partitions
from shopstream.runtime.metrics import SECONDS_BUCKETS
from shopstream.runtime.security import aiokafka_options
from shopstream.runtime.service import BatchService, ModelLifecycle, ServiceContext
from shopstream_recommender import __version__
from shopstream_recommender.catalogue import CatalogueFollower
from shopstream_recommender.config import RecommenderSettings
from shopstream_recommender.handlers import RecommenderInput, build_handler, recommender_input
from shopstream_recommender.ranking import Ranker
from shopstream_recommender.recovery import ActivityCatchUp, ReplayReport, replay_activity
from shopstream_recommender.state import RecommenderState

SERVICE_NAME = "recommender"
RANKING_VERSION = "blend-1"
"""Part of every result's lineage; bump it when the ranking changes meaning."""
logger = logging.getLogger("shopstream.recommender")


class ItemEmbedderLike(ModelLifecycle, Protocol):
    @property
    def model_id(self) -> str: ...

    @property
    def model_revision(self) -> str: ...

    def predict_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class RecommenderService(BatchService[RecommenderInput]):
    """The runtime's batch service plus what lives beside the consumer group."""

    recommender_settings: RecommenderSettings
    state: RecommenderState
    ranker: Ranker
    catalogue: CatalogueFollower
    replay: ReplayReport | None = None
    catch_up: ActivityCatchUp | None = None

    async def stop(self) -> None:
        await self.catalogue.stop()
        await super().stop()


def lineage_for(embedder: ItemEmbedderLike | None) -> Lineage:
    if embedder is None:
        return Lineage(model_id=f"shopstream-{RANKING_VERSION}", model_revision=__version__)
    return Lineage(
        model_id=f"shopstream-{RANKING_VERSION}+{embedder.model_id}"[:512],
        model_revision=f"{__version__}+{embedder.model_revision}"[:128],
    )


async def check_co_partitioning(settings: RecommenderSettings) -> None:
    """Refuse to start when a user's activity and requests could land on different replicas."""
    topics = settings.topics
    consumer = AIOKafkaConsumer(**aiokafka_options(settings.kafka))
    await consumer.start()
    try:
        activity = len(await topic_partitions(consumer, topics.activity))
        requests = len(await topic_partitions(consumer, topics.recs_requests))
    finally:
        await consumer.stop()
    if activity != requests:
        raise RuntimeError(
            f"{topics.activity!r} has {activity} partitions and {topics.recs_requests!r} has "
            f"{requests}: they must be co-partitioned (same count, same keys)"
        )


def build_service(
    settings: RecommenderSettings | None = None,
    *,
    embedder: ItemEmbedderLike | None = None,
) -> RecommenderService:
    """The recommender; `embedder` replaces the configured item encoder (tests pass fakes)."""
    settings = settings or RecommenderSettings()
    if embedder is None and settings.embedder.enabled:
        # Imported here so that importing the service (CLI, unit tests) does not import torch.
        from shopstream_recommender.model import ItemEmbedder  # noqa: PLC0415

        embedder = ItemEmbedder(settings.embedder)
    chosen = embedder
    registry = CollectorRegistry(auto_describe=True)
    state = RecommenderState(settings.limits, settings.ranking.kind_weights)
    ranker = Ranker(state, settings.ranking)
    catalogue = CatalogueFollower(
        settings.kafka,
        settings.topics.products,
        state,
        embed_batch=settings.embedder.embed_batch,
    )
    gauges = _state_metrics(registry, state, catalogue)
    ranking_seconds = Histogram(
        "shopstream_recommender_ranking_seconds",
        "Wall time of ranking one recommendation list.",
        buckets=SECONDS_BUCKETS,
        registry=registry,
    )
    lineage = lineage_for(chosen)

    def restore_hook(context: ServiceContext) -> Callable[[], Awaitable[None]]:
        if chosen is not None:

            async def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
                return await context.inference.run(chosen.predict_batch, texts)

            catalogue.embed = embed

        async def restore() -> None:
            await catalogue.start()
            gauges["catalogue_restore_seconds"].set(catalogue.stats.restore_seconds)
            await check_co_partitioning(settings)
            if settings.replay_activity:
                service.replay = await replay_activity(
                    settings.kafka,
                    settings.topics.activity,
                    settings.group_id or f"shopstream-{SERVICE_NAME}",
                    state,
                    missing_means_end=settings.batch.auto_offset_reset == "latest",
                )
                gauges["replay_seconds"].set(service.replay.seconds)
                gauges["replayed_events"].set(service.replay.applied)
                if service.catch_up is not None:
                    service.catch_up.seen.update(service.replay.until)

        return restore

    service = RecommenderService(
        name=SERVICE_NAME,
        version=__version__,
        settings=settings,
        input_topics=[settings.topics.activity, settings.topics.recs_requests],
        output_topics=[settings.topics.recs_results],
        accepts=recommender_input,
        build_handler=lambda context: build_handler(
            context,
            state,
            ranker,
            lineage=lineage,
            results_topic=settings.topics.recs_results,
            emit_after=settings.emit_after,
            emit_count=settings.emit_count,
            ranking_seconds=ranking_seconds,
        ),
        model=chosen,
        startup_hooks=[restore_hook],
        registry=registry,
    )
    service.recommender_settings = settings
    service.state = state
    service.ranker = ranker
    service.catalogue = catalogue
    if settings.replay_activity:
        # Partitions handed over by a rebalance catch up like a restart does.
        service.catch_up = ActivityCatchUp(
            settings.kafka,
            settings.topics.activity,
            settings.group_id or f"shopstream-{SERVICE_NAME}",
            state,
        )
        service.context.partitions.add_listener(service.catch_up)
    return service


def _state_metrics(
    registry: CollectorRegistry, state: RecommenderState, catalogue: CatalogueFollower
) -> dict[str, Gauge]:
    memory = Gauge(
        "shopstream_recommender_state",
        "Size of the in-memory state by part (estimated_bytes is a rough estimate).",
        ["part"],
        registry=registry,
    )
    for part in (
        "users",
        "history_entries",
        "catalogue_items",
        "item_vectors",
        "neighbour_edges",
        "estimated_bytes",
    ):
        memory.labels(part).set_function(partial(_memory_part, state, part))
    Gauge(
        "shopstream_recommender_pending_embeddings",
        "Upserted products whose text waits to be embedded.",
        registry=registry,
    ).set_function(lambda: float(catalogue.pending_embeddings))
    return {
        "catalogue_restore_seconds": Gauge(
            "shopstream_recommender_catalogue_restore_seconds",
            "Time the start-up read of the whole products topic took.",
            registry=registry,
        ),
        "replay_seconds": Gauge(
            "shopstream_recommender_replay_seconds",
            "Time the start-up replay of the activity topic (restart recovery) took.",
            registry=registry,
        ),
        "replayed_events": Gauge(
            "shopstream_recommender_replayed_events",
            "Activity events applied by the start-up replay.",
            registry=registry,
        ),
    }


def _memory_part(state: RecommenderState, part: str) -> float:
    return float(getattr(state.memory(), part))
