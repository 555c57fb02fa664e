"""`eval recommender --through-kafka`: the replay through the real broker and service scores
exactly what the in-process replay scores, request for request."""

from __future__ import annotations

import random

import pytest

from shopstream.settings import KafkaSettings
from shopstream_recommender.config import RecommenderSettings, StateLimits
from shopstream_recommender.evaluation import Click, evaluate
from shopstream_recommender.kafka_eval import evaluate_through_kafka, replay_events

pytestmark = pytest.mark.integration

# The popular-items cache is also refreshed on a wall-clock timer; the two replays run at
# different speeds, so only a refresh by event count keeps them comparable click for click.
LIMITS = StateLimits(prior_refresh_seconds=1e9)


def browsing_sessions(sessions: int, seed: int = 7) -> list[Click]:
    """Sessions walking a chain of related items (item i tends to lead to i+1 or i+2)."""
    rng = random.Random(seed)
    clicks: list[Click] = []
    at = 1_400_000_000.0
    for session in range(sessions):
        item = rng.randrange(60)
        for _ in range(rng.randint(2, 6)):
            at += rng.uniform(1, 30)
            clicks.append(Click(user=f"s{session}", item=f"i{item}", at=at, session=f"s{session}"))
            item = (item + rng.choice((1, 1, 2, 7))) % 60
    return clicks


def test_the_wire_replay_asks_before_each_scored_click_and_keeps_time_order() -> None:
    clicks = browsing_sessions(40)
    warmup, test = clicks[:100], clicks[100:]
    events, targets = replay_events(warmup, test, k=5, gap_seconds=1_800, limit=10)
    assert len(targets) == 10
    times = [event.occurred_at for event in events]
    assert times == sorted(times)
    kinds = [event.event_type for event in events]
    # Every request is followed by the click it predicts, for the same shopper.
    for position, event in enumerate(events):
        if event.event_type == "recommendations.requested":
            nxt = events[position + 1]
            assert nxt.event_type == "activity.recorded"
            assert nxt.payload.user_id == event.payload.user_id  # type: ignore[attr-defined]
            assert nxt.payload.product_id == targets[event.payload.request_id]  # type: ignore[attr-defined]
    assert kinds.count("recommendations.requested") == 10


async def test_through_kafka_scores_equal_the_in_process_replay(kafka_bootstrap: str) -> None:
    clicks = browsing_sessions(400)
    cut = len(clicks) * 3 // 4
    warmup, test = clicks[:cut], clicks[cut:]
    in_process = evaluate(warmup, test, config=RecommenderSettings().ranking, limits=LIMITS)
    local = in_process.scores["next_item"]["shopstream"]
    settings = RecommenderSettings(kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap))
    settings = settings.model_copy(update={"limits": LIMITS})
    wire = await evaluate_through_kafka(warmup, test, settings=settings, within=120)
    assert wire.requests == local.predictions > 50
    assert wire.answered == wire.requests
    assert wire.scores.hits == local.hits
    assert wire.scores.ndcg == pytest.approx(local.ndcg)
    assert wire.scores.reciprocal_rank == pytest.approx(local.reciprocal_rank)
    # The chain structure is learnable: far better than chance (k=10 of 60 items).
    assert wire.scores.hits / wire.scores.predictions > 0.4
