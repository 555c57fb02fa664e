"""The recommender's learned blend: the learning step, its schedule, and tenants each getting
their own mix from their own shoppers, deterministically (a replay learns the same)."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from shopstream.events import ActivityKind
from shopstream_recommender.blend import BlendWeights
from shopstream_recommender.config import BlendLearning, RankingConfig, RecommenderSettings
from shopstream_recommender.ranking import SIGNALS, Ranker, Signal, configured_weights
from shopstream_recommender.state import Interaction, RecommenderState
from support.recommender import fed_service

pytestmark = pytest.mark.unit


def test_the_weight_of_a_signal_that_points_at_the_answer_grows_and_an_off_one_stays_off() -> None:
    rng = np.random.default_rng(3)
    blend = BlendWeights(("telling", "noise", "off"), [1.0, 1.0, 0.0])
    schedule = BlendLearning(head=50)
    for _ in range(300):
        features = rng.random((40, 3))
        answer = int(np.argmax(features[:, 0] + 0.1 * rng.random(40)))
        items = [f"i{row}" for row in range(40)]
        assert blend.learn(features, items[answer], items, schedule)
    weights = blend.as_dict()
    assert weights["telling"] > 2 * weights["noise"] >= 0
    assert weights["off"] == 0.0
    assert blend.answered == 300
    assert blend.shares()["telling"] == pytest.approx(
        weights["telling"] / (weights["telling"] + weights["noise"])
    )


def test_an_answer_beyond_the_head_of_the_list_teaches_nothing() -> None:
    blend = BlendWeights(("a", "b"), [1.0, 0.5])
    features = np.array([[1.0, 0.0], [0.9, 0.0], [0.8, 0.0], [0.0, 0.1]])
    items = ["w", "x", "y", "z"]
    assert not blend.learn(features, "z", items, BlendLearning(head=3))
    assert blend.as_dict() == {"a": 1.0, "b": 0.5}
    assert (blend.answered, blend.missed) == (0, 1)
    assert blend.learn(features, "z", items, BlendLearning(head=4))
    assert blend.as_dict()["b"] > 0.5 > 0


def test_rehearsals_are_dense_for_a_new_tenant_then_thin_out_up_to_a_cap() -> None:
    schedule = BlendLearning(dense_rehearsals=3, gap_share=0.5, max_gap=4)
    assert [schedule.next_gap(answered) for answered in (0, 2, 4, 6, 99)] == [1, 1, 2, 3, 4]
    blend = BlendWeights(("a",), [1.0])
    blend.answered, blend.missed = 4, 2  # six rehearsals: the next gap is 3 interactions
    assert [blend.due(schedule) for _ in range(7)] == [True, False, False, True, False, False, True]


SESSIONS, HISTORIES = "shop-sessions", "shop-histories"
CLUSTERS = 6
CLUSTER_SIZE = 12


def shop_streams(seed: int = 5) -> list[Interaction]:
    """Two shops, interleaved in time. In the sessions shop, a shopper walks a fixed chain of
    items (each item leads to the next one, whoever the shopper), one short session each.
    In the histories shop, each shopper keeps to one taste (a cluster of items) for many
    visits over weeks, in no particular order: the last item says little, the history a lot.
    """
    rng = random.Random(seed)
    clock = itertools.count(1_700_000_000, 7)
    chain = [f"c{index}" for index in range(CLUSTERS * CLUSTER_SIZE)]
    events: list[Interaction] = []
    for shopper in range(220):
        start = rng.randrange(len(chain) - 6)
        events += (
            Interaction(
                SESSIONS,
                f"s{shopper}",
                ActivityKind.VIEW,
                float(next(clock)),
                chain[start + step],
                session_id=f"s{shopper}",
            )
            for step in range(5)
        )
        taste = shopper % CLUSTERS
        items = [f"t{taste}-{index}" for index in range(CLUSTER_SIZE)]
        for visit in rng.sample(items, 10):
            events.append(
                Interaction(
                    HISTORIES,
                    f"h{shopper}",
                    ActivityKind.VIEW,
                    float(next(clock)) + 4 * 3_600 * len(events),
                    visit,
                )
            )
    events.sort(key=lambda event: event.at)
    return events


def learned(events: list[Interaction], **ranking: object) -> tuple[RecommenderState, Ranker]:
    config = RankingConfig.model_validate(ranking)
    state = RecommenderState(RecommenderSettings().limits, config.kind_weights)
    ranker = Ranker(state, config)
    for event in events:
        ranker.record(event)
    return state, ranker


def test_a_shop_of_sessions_and_a_shop_of_long_histories_each_learn_their_own_mix() -> None:
    state, _ = learned(shop_streams())
    sessions = state.tenant(SESSIONS).blend
    histories = state.tenant(HISTORIES).blend
    assert sessions is not None
    assert histories is not None
    assert sessions.answered > 50
    assert histories.answered > 50
    session_weights, history_weights = sessions.as_dict(), histories.as_dict()
    configured = configured_weights(RankingConfig())
    # Sessions: the chain is directional, so "viewed next" gains on every other signal.
    assert session_weights[Signal.NEXT_ITEM] > 2 * configured[Signal.NEXT_ITEM]
    assert session_weights[Signal.NEXT_ITEM] > 2 * session_weights[Signal.CO_VIEWED]
    assert session_weights[Signal.NEXT_ITEM] > 2 * session_weights[Signal.LIKED_TOGETHER]
    # Histories: visits weeks apart leave no session evidence, so the session weights stay
    # where they started, and the long-term ones move; a session shop never touches those.
    assert history_weights[Signal.NEXT_ITEM] == configured[Signal.NEXT_ITEM]
    assert history_weights[Signal.PROFILE] != configured[Signal.PROFILE]
    assert session_weights[Signal.PROFILE] == configured[Signal.PROFILE]
    assert history_weights[Signal.LIKED_TOGETHER] != session_weights[Signal.LIKED_TOGETHER]


def test_a_replay_learns_the_same_weights_and_a_redelivered_event_is_not_learned_twice() -> None:
    events = shop_streams()
    first, ranker = learned(events)
    again, _ = learned(events)
    for tenant in (SESSIONS, HISTORIES):
        one, other = first.tenant(tenant).blend, again.tenant(tenant).blend
        assert one is not None
        assert other is not None
        assert one.as_dict() == other.as_dict()
    blend = first.tenant(SESSIONS).blend
    assert blend is not None
    late = [
        Interaction(
            SESSIONS,
            "late",
            ActivityKind.VIEW,
            events[-1].at + step,
            f"c{step}",
            event_id=f"e{step}",
        )
        for step in (1, 2)
    ]
    assert ranker.record(late[0])
    assert ranker.record(late[1])
    counted = (blend.answered, blend.missed, blend.wait)
    assert not ranker.record(late[1])
    assert (blend.answered, blend.missed, blend.wait) == counted


def test_learning_switched_off_keeps_the_configured_weights() -> None:
    state, ranker = learned(shop_streams(), learning={"enabled": False})
    assert state.tenant(SESSIONS).blend is None
    assert ranker.recommend(SESSIONS, "s1", 3).items


def test_the_learned_shares_are_exported_as_metrics_without_tenant_labels() -> None:
    registry, ranker = fed_service(shop_streams())
    shares = {
        signal: registry.get_sample_value(
            "shopstream_recommender_blend_share", {"signal": signal.value}
        )
        for signal in SIGNALS
    }
    assert sum(value or 0.0 for value in shares.values()) == pytest.approx(1.0)
    assert all(value is not None and value >= 0 for value in shares.values())
    answered = registry.get_sample_value(
        "shopstream_recommender_blend_rehearsals", {"outcome": "answered"}
    )
    state = ranker.state
    assert answered == sum(
        tenant.blend.answered for tenant in state.tenants() if tenant.blend is not None
    )
    assert answered is not None
    assert answered > 100
