"""A batch of activity and requests in; `recommendations.produced` events out.

Activity and requests of a user share a partition (co-partitioned topics), so they arrive in
one consumer. A batch is worked through in event-time order (stable, so records of one topic
keep their log order): each request is answered from exactly the activity that happened before
it, however the consumer interleaved the two topics' records, and never from a click that came
after it. No torch and no Kafka here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from operator import attrgetter
from typing import Annotated

from prometheus_client import Histogram
from pydantic import Field, TypeAdapter

from shopstream.events import (
    ActivityKind,
    ActivityRecorded,
    Lineage,
    RecommendationsProduced,
    RecommendationsProducedPayload,
    RecommendationsRequested,
    RecommendedItem,
)
from shopstream.runtime.batch import BatchHandler, Publication
from shopstream.runtime.service import ServiceContext
from shopstream_recommender.ranking import Ranker, Ranking
from shopstream_recommender.state import Interaction

RecommenderInput = ActivityRecorded | RecommendationsRequested
recommender_input: TypeAdapter[RecommenderInput] = TypeAdapter(
    Annotated[RecommenderInput, Field(discriminator="event_type")]
)
MAX_REASON_CHARS = 512
MAX_CLOCK_SKEW_SECONDS = 300.0
UNASKED = "after-activity"


def interaction_of(event: ActivityRecorded, latest: float) -> Interaction:
    """The event as the state records it, its time capped at `latest` (`latest_event_time`,
    worked out once per batch)."""
    payload = event.payload
    return Interaction(
        tenant_id=event.tenant_id,
        user_id=payload.user_id,
        kind=payload.kind,
        at=min(event.occurred_at.timestamp(), latest),
        product_id=payload.product_id,
        session_id=payload.session_id,
        rating=payload.rating,
        # The UUID's 128-bit int: hashed in C, and an int in the state is one object fewer
        # for the cyclic collector to walk than a UUID (its str cost 0.5 µs per event).
        event_id=event.event_id.int,
    )


def latest_event_time() -> float:
    """The latest event time the state accepts: a producer clock far in the future would make
    its event outweigh all evidence (time decay runs on event time), so event time is capped a
    little past this host's clock."""
    return time.time() + MAX_CLOCK_SKEW_SECONDS


def produced_payload(
    user_id: str, request_id: str | None, ranking: Ranking
) -> RecommendationsProducedPayload:
    return RecommendationsProducedPayload(
        user_id=user_id,
        request_id=request_id,
        items=[
            RecommendedItem(
                product_id=item.product_id,
                score=item.score,
                reason=item.reason[:MAX_REASON_CHARS],
            )
            for item in ranking.items
        ],
        cold_start=ranking.cold_start,
    )


def build_handler(
    context: ServiceContext,
    ranker: Ranker,
    *,
    lineage: Lineage,
    results_topic: str,
    emit_after: Sequence[ActivityKind] = (),
    emit_count: int = 10,
    ranking_seconds: Histogram | None = None,
) -> BatchHandler[RecommenderInput]:
    triggers = frozenset(emit_after)

    def answer(
        cause: RecommenderInput, user_id: str, request_id: str | None, ranking: Ranking
    ) -> Publication:
        result = context.result(
            RecommendationsProduced,
            cause,
            lineage,
            produced_payload(user_id, request_id, ranking),
            extra="" if request_id is not None else UNASKED,
            correlation_fallback=request_id,
        )
        return Publication(results_topic, result)

    def rank(tenant_id: str, user_id: str, count: int, context_product_id: str | None) -> Ranking:
        started = time.perf_counter()
        ranking = ranker.recommend(tenant_id, user_id, count, context_product_id=context_product_id)
        if ranking_seconds is not None:
            ranking_seconds.observe(time.perf_counter() - started)
        return ranking

    async def handle(events: Sequence[RecommenderInput]) -> list[Publication]:
        publications: list[Publication] = []
        latest = latest_event_time()
        # Every decoded time is in UTC (`UtcTimestamp`), so datetimes compare without a
        # conversion to seconds per event.
        for event in sorted(events, key=_occurred_at):
            if isinstance(event, ActivityRecorded):
                # Redelivered activity (a retried or bisected batch) is recognised by its id.
                ranker.record(interaction_of(event, latest))
            if isinstance(event, RecommendationsRequested):
                payload = event.payload
                ranking = rank(
                    event.tenant_id, payload.user_id, payload.count, payload.context_product_id
                )
                publications.append(answer(event, payload.user_id, payload.request_id, ranking))
            elif event.payload.kind in triggers:
                activity = event.payload
                ranking = rank(event.tenant_id, activity.user_id, emit_count, activity.product_id)
                publications.append(answer(event, activity.user_id, None, ranking))
        return publications

    return handle


_occurred_at = attrgetter("occurred_at")
