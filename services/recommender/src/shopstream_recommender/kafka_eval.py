"""`eval recommender --through-kafka`: the same replay, through the real broker and the service.

Every click becomes an `activity.recorded` event and every scored click is preceded by a
`recommendations.requested` for its shopper (count k, the page being viewed as context). All of
them go, in the replay's order, to one single-partition topic that a real recommender service
(the same `build_service` a pod runs) reads as both its activity and its requests topic: Kafka
then delivers exactly the replay's order, and the handler works a batch in event-time order,
so each request is answered from exactly the clicks before it, as in the in-process replay.

Only the ``next_item`` protocol is scored: a request carries no list of items to exclude, so the
stricter ``next_new_item`` ranking cannot be asked for over the wire.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka.admin import AIOKafkaAdminClient

from shopstream.events import (
    ActivityKind,
    ActivityRecorded,
    Event,
    RecommendationsProduced,
    RecommendationsRequested,
)
from shopstream.kafka_io import publish_events, read_topic
from shopstream.runtime.security import aiokafka_options
from shopstream_recommender.app import build_service
from shopstream_recommender.config import EmbedderConfig, RecommenderSettings
from shopstream_recommender.evaluation import EVAL_TENANT, Click, Scores, replay_plan


@dataclass
class KafkaEvalReport:
    """What came back over the wire, scored like the in-process ``next_item`` protocol."""

    k: int
    events_published: int
    requests: int
    answered: int
    publish_seconds: float
    answer_seconds: float
    """From the first publish until the last answer arrived (the service consumes while the
    replay is still being published)."""
    scores: Scores
    recommended: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, object]:
        return {
            "k": self.k,
            "events_published": self.events_published,
            "requests": self.requests,
            "answered": self.answered,
            "publish_seconds": round(self.publish_seconds, 2),
            "answer_seconds": round(self.answer_seconds, 2),
            "events_per_second": round(self.events_published / max(self.answer_seconds, 1e-9)),
            "next_item": self.scores.summary(),
            "recommended_items": len(self.recommended),
        }


def replay_events(
    warmup: Sequence[Click],
    test: Sequence[Click],
    *,
    k: int,
    gap_seconds: float,
    limit: int | None,
) -> tuple[list[Event], dict[str, str]]:
    """The replay as events in publishing order, and each request id's target item."""
    events: list[Event] = [_activity(click) for click in warmup]
    targets: dict[str, str] = {}
    for step in replay_plan(warmup, test, gap_seconds=gap_seconds, limit=limit):
        if step.previous is not None and not step.reclick:
            request_id = f"q{len(targets)}"
            targets[request_id] = step.click.item
            events.append(
                RecommendationsRequested(
                    tenant_id=EVAL_TENANT,
                    occurred_at=_at(step.click),
                    payload={
                        "user_id": step.click.user,
                        "request_id": request_id,
                        "count": k,
                        "context_product_id": step.previous,
                    },
                )
            )
        events.append(_activity(step.click))
    return events, targets


def eval_settings(base: RecommenderSettings, run: str) -> RecommenderSettings:
    """The service's settings for one replay: private single-partition topics and group, no
    restart replay, no item encoder (the replay has no catalogue, like the in-process one)."""
    stream = f"shopstream.eval.{run}.activity"
    topics = base.topics.model_copy(
        update={
            "activity": stream,
            "recs_requests": stream,
            "recs_results": f"shopstream.eval.{run}.results",
            "products": f"shopstream.eval.{run}.products",
            "partitions": 1,
        }
    )
    batch = base.batch.model_copy(update={"auto_offset_reset": "earliest"})
    return base.model_copy(
        update={
            "topics": topics,
            "batch": batch,
            "group_id": f"shopstream-eval-{run}",
            "replay_activity": False,
            "embedder": EmbedderConfig(enabled=False),
            "http_port": 0,
            "create_topics": True,
        }
    )


async def evaluate_through_kafka(
    warmup: Sequence[Click],
    test: Sequence[Click],
    *,
    settings: RecommenderSettings,
    k: int = 10,
    limit: int | None = None,
    within: float = 900.0,
) -> KafkaEvalReport:
    """Publish the replay, let a real recommender answer it, and score the answers."""
    run = uuid.uuid4().hex[:10]
    chosen = eval_settings(settings, run)
    events, targets = replay_events(
        warmup, test, k=k, gap_seconds=chosen.limits.session_gap_seconds, limit=limit
    )
    service = build_service(chosen)
    await service.start()
    try:
        started = time.perf_counter()
        await publish_events(chosen.kafka, chosen.topics.activity, events, linger_ms=20)
        published = time.perf_counter() - started
        answers = await _answers(chosen, len(targets), deadline=time.monotonic() + within)
        answered_after = time.perf_counter() - started
    finally:
        await service.stop()
        await _delete_topics(chosen)
    scores = Scores()
    recommended: set[str] = set()
    for request_id, target in targets.items():
        items = answers.get(request_id, [])
        recommended.update(items[:k])
        scores.add(items, target, k)
    return KafkaEvalReport(
        k=k,
        events_published=len(events),
        requests=len(targets),
        answered=sum(request_id in answers for request_id in targets),
        publish_seconds=published,
        answer_seconds=answered_after,
        scores=scores,
        recommended=recommended,
    )


async def _answers(
    settings: RecommenderSettings, expected: int, *, deadline: float
) -> dict[str, list[str]]:
    answers: dict[str, list[str]] = {}
    if expected == 0:
        return answers
    async for _key, value, _headers in read_topic(
        settings.kafka, settings.topics.recs_results, idle_timeout=None, deadline=deadline
    ):
        produced = RecommendationsProduced.model_validate_json(value)
        if produced.payload.request_id is not None:
            answers[produced.payload.request_id] = [
                item.product_id for item in produced.payload.items
            ]
        if len(answers) >= expected:
            break
    return answers


async def _delete_topics(settings: RecommenderSettings) -> None:
    # The replay's topics are private to this run; leaving them would only fill the disk.
    topics = settings.topics
    admin = AIOKafkaAdminClient(**aiokafka_options(settings.kafka))
    with contextlib.suppress(Exception):
        await admin.start()
        await admin.delete_topics([topics.activity, topics.recs_results, topics.products])
    with contextlib.suppress(Exception):
        await admin.close()


def _activity(click: Click) -> ActivityRecorded:
    kind = ActivityKind.RATING if click.rating is not None else ActivityKind.VIEW
    return ActivityRecorded(
        tenant_id=EVAL_TENANT,
        occurred_at=_at(click),
        payload={
            "user_id": click.user,
            "kind": kind,
            "product_id": click.item,
            "session_id": click.session,
            "rating": click.rating,
        },
    )


def _at(click: Click) -> datetime:
    return datetime.fromtimestamp(click.at, UTC)
