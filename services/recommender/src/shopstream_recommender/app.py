"""The recommender service: state, catalogue follower, replay and handler wired onto the runtime.

Start-up, in order: topics, item encoder, the catalogue read in full (global table), the
co-partitioning check, the activity replay up to the group's committed offsets (restart
recovery), then the consumer group on activity + requests. Each later assignment of activity
partitions catches the state up the same way (`ActivityCatchUp`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Protocol

import numpy as np
import numpy.typing as npt
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, Gauge, Histogram

from shopstream.events import Lineage
from shopstream.runtime.metrics import SECONDS_BUCKETS
from shopstream.runtime.partitions import PartitionTracker
from shopstream.runtime.results import ServedModel
from shopstream.runtime.security import aiokafka_options
from shopstream.runtime.service import BatchService, ModelLifecycle
from shopstream.runtime.tables import topic_partitions
from shopstream_recommender import __version__
from shopstream_recommender.catalogue import CatalogueFollower
from shopstream_recommender.config import RecommenderSettings
from shopstream_recommender.handlers import RecommenderInput, build_handler, recommender_input
from shopstream_recommender.ranking import SIGNALS, Ranker, Signal
from shopstream_recommender.recovery import ActivityCatchUp, ReplayReport, replay_activity
from shopstream_recommender.rerank import CONTEXT_FEATURES
from shopstream_recommender.spec import SPEC
from shopstream_recommender.state import RecommenderState

RANKING_VERSION = "blend-4"
"""Part of every result's lineage; bump it when the ranking changes meaning."""
logger = logging.getLogger("shopstream.recommender")


class ItemEmbedderLike(ServedModel, ModelLifecycle, Protocol):
    def predict_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class RecommenderCore:
    """The in-memory state and its ranker, with what fills the state (the catalogue follower)
    and rebuilds it (the activity replay at start, the catch-up on each later assignment); a
    service component, started after the item encoder loads and stopped before it unloads."""

    def __init__(
        self,
        settings: RecommenderSettings,
        state: RecommenderState,
        ranker: Ranker,
        catalogue: CatalogueFollower,
        gauges: dict[str, Gauge],
    ) -> None:
        self.settings = settings
        self.state = state
        self.ranker = ranker
        self.catalogue = catalogue
        self._gauges = gauges
        self._group_id = settings.group_id or f"shopstream-{SPEC.name}"
        self.replay: ReplayReport | None = None
        self.catch_up: ActivityCatchUp | None = None
        if settings.replay_activity:
            # Partitions handed over by a rebalance catch up like a restart does.
            self.catch_up = ActivityCatchUp(
                settings.kafka, settings.topics.activity, self._group_id, ranker
            )

    async def start(self) -> None:
        settings = self.settings
        await self.catalogue.start()
        self._gauges["catalogue_restore_seconds"].set(self.catalogue.stats.restore_seconds)
        await check_co_partitioning(settings)
        if self.catch_up is None:
            return
        self.replay = await replay_activity(
            settings.kafka,
            settings.topics.activity,
            self._group_id,
            self.ranker,
            missing_means_end=settings.batch.auto_offset_reset == "latest",
        )
        self._gauges["replay_seconds"].set(self.replay.seconds)
        self._gauges["replayed_events"].set(self.replay.applied)
        self.catch_up.seen.update(self.replay.until)

    async def on_assigned(
        self, assigned: frozenset[TopicPartition], tracker: PartitionTracker
    ) -> None:
        if self.catch_up is not None:
            await self.catch_up.on_assigned(assigned, tracker)

    async def stop(self) -> None:
        await self.catalogue.stop()


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
) -> BatchService[RecommenderInput]:
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

    async def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        assert chosen is not None, "only set with an item encoder"
        # Called once the service has started, on the service's one inference thread.
        return await service.context.inference.run(chosen.predict_batch, texts)

    catalogue = CatalogueFollower(
        settings.kafka,
        settings.topics.products,
        state,
        embed_batch=settings.embedder.embed_batch,
        embed=embed if chosen is not None else None,
    )
    gauges = _state_metrics(registry, state, catalogue)
    ranking_seconds = Histogram(
        "shopstream_recommender_ranking_seconds",
        "Wall time of ranking one recommendation list.",
        buckets=SECONDS_BUCKETS,
        registry=registry,
    )
    lineage = lineage_for(chosen)

    service: BatchService[RecommenderInput] = BatchService(
        **SPEC.identity(settings, __version__),
        accepts=recommender_input,
        build_handler=lambda context: build_handler(
            context,
            ranker,
            lineage=lineage,
            results_topic=settings.topics.recs_results,
            emit_after=settings.emit_after,
            emit_count=settings.emit_count,
            ranking_seconds=ranking_seconds,
        ),
        model=chosen,
        components=[RecommenderCore(settings, state, ranker, catalogue, gauges)],
        registry=registry,
    )
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
        "session_entries",
        "estimated_bytes",
    ):
        memory.labels(part).set_function(partial(_memory_part, state, part))
    shares = Gauge(
        "shopstream_recommender_blend_share",
        "Learned share of each signal in the blend, averaged over the tenants (per-tenant "
        "weights are learned from what shoppers go to next; no tenant labels).",
        ["signal"],
        registry=registry,
    )
    for signal in SIGNALS:
        shares.labels(signal.value).set_function(partial(_blend_share, state, signal))
    rehearsals = Gauge(
        "shopstream_recommender_blend_rehearsals",
        "Rehearsed requests the blends learned from (answered: the next item was in the head "
        "of the list; missed: it was not, nothing learned), over all tenants.",
        ["outcome"],
        registry=registry,
    )
    rehearsals.labels("answered").set_function(partial(_blend_count, state, "answered"))
    rehearsals.labels("missed").set_function(partial(_blend_count, state, "missed"))
    context = Gauge(
        "shopstream_recommender_context_weight",
        "Learned weight of each second-stage feature (shopstream_recommender.rerank), averaged "
        "over the tenants (no tenant labels).",
        ["feature"],
        registry=registry,
    )
    for column, feature in enumerate(CONTEXT_FEATURES):
        context.labels(feature).set_function(partial(_context_weight, state, column))
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


def _blend_share(state: RecommenderState, signal: Signal) -> float:
    shares = [tenant.blend.shares()[signal] for tenant in state.tenants() if tenant.blend]
    return sum(shares) / len(shares) if shares else 0.0


def _context_weight(state: RecommenderState, column: int) -> float:
    weights = [float(tenant.context.values[column]) for tenant in state.tenants() if tenant.context]
    return sum(weights) / len(weights) if weights else 0.0


def _blend_count(state: RecommenderState, outcome: str) -> float:
    return float(sum(getattr(tenant.blend, outcome) for tenant in state.tenants() if tenant.blend))


def _memory_part(state: RecommenderState, part: str) -> float:
    return float(getattr(state.memory(), part))
