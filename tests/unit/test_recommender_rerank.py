"""The recommender's second stage: its features, its learning step, and that it re-orders the
blend's head only once a tenant's weights have moved (and never when switched off)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shopstream.events import ActivityKind
from shopstream_recommender.blend import ContextWeights
from shopstream_recommender.config import ContextRanking, RankingConfig, RecommenderSettings
from shopstream_recommender.ranking import Ranker
from shopstream_recommender.rerank import CONTEXT_FEATURES, context_features
from shopstream_recommender.state import Interaction, RecommenderState
from support.recommender import fed_service

pytestmark = pytest.mark.unit

SHOP = "shop"
START = 1_700_000_000.0


def view(user: str, item: str, at: float, session: str) -> Interaction:
    return Interaction(SHOP, user, ActivityKind.VIEW, START + at, item, session_id=session)


def ranker_after(events: list[Interaction], **ranking: object) -> Ranker:
    config = RankingConfig.model_validate(ranking)
    state = RecommenderState(RecommenderSettings().limits, config.kind_weights)
    ranker = Ranker(state, config)
    for event in events:
        ranker.record(event)
    return ranker


def test_features_count_transitions_from_the_page_co_views_and_the_session() -> None:
    # Three shoppers went from "tent" straight to "stove", one to "lamp"; "me" viewed "lamp"
    # two minutes ago and is on "tent" now.
    events = [
        event
        for shopper in range(3)
        for event in (
            view(f"u{shopper}", "tent", 10.0 * shopper, f"s{shopper}"),
            view(f"u{shopper}", "stove", 10.0 * shopper + 1, f"s{shopper}"),
        )
    ]
    events += [view("u9", "tent", 40.0, "s9"), view("u9", "lamp", 41.0, "s9")]
    events += [view("me", "lamp", 100.0, "mine"), view("me", "tent", 220.0, "mine")]
    ranker = ranker_after(events, learning={"enabled": False})
    state = ranker.state
    tenant, user = state.tenant(SHOP), state.user(SHOP, "me")
    assert user is not None
    rows = context_features(tenant, user, "tent", ["stove", "lamp", "kayak"], user.last_at)
    features = {
        item: dict(zip(CONTEXT_FEATURES, row.tolist(), strict=True))
        for item, row in zip(("stove", "lamp", "kayak"), rows, strict=True)
    }
    # Half-lives are weeks, so the decay over these seconds is below the tolerance.
    assert features["stove"]["transitions"] == pytest.approx(math.log1p(3), rel=1e-4)
    assert features["lamp"]["transitions"] == pytest.approx(math.log1p(1), rel=1e-4)
    assert features["stove"]["transition_share"] == pytest.approx(0.75, rel=1e-4)
    assert features["kayak"]["transitions"] == features["kayak"]["transition_share"] == 0.0
    # "tent" and "stove": 3 co-views; popularity 5 and 3 views.
    assert features["stove"]["co_view_cosine"] == pytest.approx(3 / math.sqrt(5 * 3), rel=1e-4)
    assert features["lamp"]["session_views"] == pytest.approx(math.log1p(1))
    assert features["lamp"]["session_recency"] == pytest.approx(1 / (1 + 2.0))
    assert features["stove"]["session_views"] == features["stove"]["session_recency"] == 0.0


def test_a_feature_that_marks_the_answer_gains_weight_and_noise_stays_small() -> None:
    rng = np.random.default_rng(4)
    weights = ContextWeights(("telling", "noise"))
    assert not weights.learned
    scores = np.ones(30)
    for _ in range(200):
        features = rng.random((30, 2))
        answer = int(np.argmax(features[:, 0]))
        weights.learn(scores, features, answer, learning_rate=0.5)
    learned = weights.as_dict()
    assert weights.learned
    assert learned["telling"] > 5 * abs(learned["noise"])
    assert weights.answered == 200


def test_with_no_weights_learned_the_second_stage_is_the_blends_order() -> None:
    weights = ContextWeights(CONTEXT_FEATURES)
    scores = np.array([3.0, 1.0, 2.0])
    features = np.random.default_rng(1).random((3, len(CONTEXT_FEATURES)))
    assert np.argsort(-weights.logits(scores, features)).tolist() == [0, 2, 1]


def session_shop() -> list[Interaction]:
    """Shoppers walk tent -> stove -> lamp; each also re-opens the tent page once."""
    events = []
    for shopper in range(60):
        base = 100.0 * shopper
        for step, item in enumerate(("tent", "stove", "lamp", "tent", "rope")):
            events.append(view(f"u{shopper}", item, base + step, f"s{shopper}"))
    return events


def test_learned_weights_reorder_the_head_and_switching_off_restores_the_blend() -> None:
    ranker = ranker_after(session_shop())
    context = ranker.state.tenant(SHOP).context
    assert context is not None
    assert context.learned
    for event in (view("me", "tent", 10_000.0, "mine"), view("me", "stove", 10_001.0, "mine")):
        ranker.record(event)
    switched_off = Ranker(ranker.state, RankingConfig(context=ContextRanking(enabled=False)))

    def top(chosen: Ranker) -> list[str]:
        ranking = chosen.recommend(SHOP, "me", 3, context_product_id="stove")
        return [item.product_id for item in ranking.items]

    blend_order = top(switched_off)
    assert blend_order[0] == "lamp", "everyone went from stove to lamp"
    # A weight the blend does not have: the shopper's own session items first.
    context.values[:] = 0.0
    context.values[CONTEXT_FEATURES.index("session_views")] = 50.0
    assert top(ranker)[0] == "tent"
    assert top(switched_off) == blend_order
    context.values[:] = 0.0
    assert top(ranker) == blend_order


def test_a_replay_learns_the_same_second_stage() -> None:
    events = session_shop()
    one = ranker_after(events).state.tenant(SHOP).context
    other = ranker_after(events).state.tenant(SHOP).context
    assert one is not None
    assert other is not None
    assert one.as_dict() == other.as_dict()
    assert one.answered > 0


def test_the_learned_weights_are_exported_as_metrics_without_tenant_labels() -> None:
    registry, ranker = fed_service(session_shop())
    context = ranker.state.tenant(SHOP).context
    assert context is not None
    for feature, value in context.as_dict().items():
        exported = registry.get_sample_value(
            "shopstream_recommender_context_weight", {"feature": feature}
        )
        assert exported == pytest.approx(value)
