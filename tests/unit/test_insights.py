"""Rolling product insights: windows, trend, alert rule, pain points, memory bounds, resume."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shopstream.events import (
    AspectFinding,
    Lineage,
    Polarity,
    ProductInsightsUpdated,
    ProductInsightsUpdatedPayload,
)
from shopstream_sentiment.insights import (
    InsightRules,
    InsightsBook,
    ProductInsights,
    ScoredReview,
    Window,
    parse_window,
)

pytestmark = pytest.mark.unit

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
RULES = InsightRules.from_names(["7d", "30d", "all"], alert_min_reviews=5, alert_jump=0.2)


def review(
    label: Polarity,
    days_ago: float = 0,
    aspects: tuple[tuple[str, Polarity, str], ...] = (),
    event_id: uuid.UUID | None = None,
) -> ScoredReview:
    return ScoredReview(
        event_id=event_id or uuid.uuid4(),
        occurred_at=NOW - timedelta(days=days_ago),
        label=label,
        aspects=[
            AspectFinding(aspect=aspect, polarity=polarity, score=0.5, snippet=snippet)
            for aspect, polarity, snippet in aspects
        ],
    )


def snapshot(state: ProductInsights) -> ProductInsightsUpdatedPayload:
    return state.snapshot("p1", NOW)


def windows(payload: ProductInsightsUpdatedPayload) -> dict[str, tuple[int, int, int]]:
    return {
        item.window: (item.mix.positive, item.mix.neutral, item.mix.negative)
        for item in payload.windows
    }


def test_window_names_parse_and_all_is_implicit() -> None:
    assert parse_window(" 7d ") == Window("7d", 168)
    assert parse_window("12h") == Window("12h", 12)
    assert [w.name for w in InsightRules.from_names(["30d", "all", "7d"]).windows] == ["7d", "30d"]
    for bad in ("7", "1w", "0d", "d", "-3d", "1.5d"):
        with pytest.raises(ValueError, match="span such as"):
            parse_window(bad)
    with pytest.raises(ValueError, match="distinct"):
        InsightRules(windows=(Window("30d", 720), Window("7d", 168)))
    with pytest.raises(ValueError, match="buckets"):
        InsightRules.from_names(["1h", "100d"])
    with pytest.raises(ValueError, match="insight windows"):
        InsightRules.from_names(["all"])


def test_windows_count_reviews_by_occurred_at_up_to_the_newest_review() -> None:
    state = ProductInsights(RULES)
    for label, days in [
        (Polarity.POSITIVE, 0),
        (Polarity.NEGATIVE, 3),
        (Polarity.NEUTRAL, 6.4),
        (Polarity.POSITIVE, 10),
        (Polarity.NEGATIVE, 29),
        (Polarity.POSITIVE, 40),
        (Polarity.POSITIVE, 400),
    ]:
        assert state.add(review(label, days))
    payload = snapshot(state)
    assert payload.review_count == 7
    assert (payload.mix.positive, payload.mix.neutral, payload.mix.negative) == (4, 1, 2)
    assert windows(payload) == {"7d": (1, 1, 1), "30d": (2, 1, 2), "all": (4, 1, 2)}
    assert payload.latest_review_at == NOW
    assert [w.window for w in payload.windows] == ["7d", "30d", "all"]
    assert payload.windows[0].negative_share == pytest.approx(1 / 3)


def test_windows_follow_event_time_not_the_wall_clock() -> None:
    # Reviews from a year ago still fill the 7d window when they are the newest ones: replaying
    # old data gives the insights it gave then.
    state = ProductInsights(RULES)
    old = NOW - timedelta(days=365)
    for offset in range(3):
        state.add(ScoredReview(uuid.uuid4(), old - timedelta(days=offset), Polarity.NEGATIVE))
    assert windows(snapshot(state))["7d"] == (0, 0, 3)


def test_day_buckets_are_bounded_by_the_longest_window() -> None:
    state = ProductInsights(RULES)
    for days in range(0, 200, 2):
        state.add(review(Polarity.POSITIVE, days))
    assert RULES.bucket_hours == 24
    assert len(state.buckets) == 15
    assert min(state.buckets) > RULES.bucket_of(NOW - timedelta(days=30))
    assert state.review_count == 100


def test_hour_windows_use_hour_buckets() -> None:
    rules = InsightRules.from_names(["6h", "2d"])
    assert rules.bucket_hours == 1
    state = ProductInsights(rules)
    for hours in (0, 3, 4.5, 6.5, 20, 47, 60):  # 6h = the six hour buckets up to 12:59
        state.add(review(Polarity.NEGATIVE, hours / 24))
    assert windows(state.snapshot("p1", NOW)) == {
        "6h": (0, 0, 3),
        "2d": (0, 0, 6),
        "all": (0, 0, 7),
    }
    assert len(state.buckets) == 6


def test_trend_compares_the_recent_window_with_the_products_own_history() -> None:
    state = ProductInsights(RULES)
    for days in range(10, 30):
        state.add(review(Polarity.POSITIVE if days % 10 else Polarity.NEGATIVE, days))
    for days in range(5):
        state.add(review(Polarity.NEGATIVE if days < 3 else Polarity.POSITIVE, days))
    payload = snapshot(state)
    baseline_share = 2 / 20
    assert payload.trend == pytest.approx(3 / 5 - baseline_share)
    assert payload.alert
    assert payload.alert_reason is not None
    assert "60%" in payload.alert_reason
    assert "10%" in payload.alert_reason


@pytest.mark.parametrize(
    ("recent_negative", "recent_total", "baseline_total", "alert"),
    [
        (4, 5, 5, True),  # shares 0.8 vs 0.0: jump with enough reviews on both sides
        (4, 4, 10, False),  # too few recent reviews
        (4, 5, 4, False),  # too little history to compare with
        (1, 5, 10, True),  # 0.2 vs 0.0: exactly the jump
        (0, 5, 10, False),  # nothing got worse
    ],
)
def test_alert_needs_min_reviews_on_both_sides_and_the_jump(
    recent_negative: int, recent_total: int, baseline_total: int, alert: bool
) -> None:
    state = ProductInsights(RULES)
    for index in range(baseline_total):
        state.add(review(Polarity.POSITIVE, 20 + index % 5))
    for index in range(recent_total):
        state.add(review(Polarity.NEGATIVE if index < recent_negative else Polarity.POSITIVE, 1))
    payload = snapshot(state)
    assert payload.alert is alert
    assert (payload.alert_reason is not None) is alert


def test_a_new_product_with_only_bad_reviews_has_no_baseline_to_alert_against() -> None:
    state = ProductInsights(RULES)
    for _ in range(10):
        state.add(review(Polarity.NEGATIVE, 1))
    payload = snapshot(state)
    assert payload.trend == 0.0
    assert not payload.alert


def test_pain_points_rank_negative_aspects_with_the_newest_examples() -> None:
    state = ProductInsights(RULES)
    for index in range(5):
        state.add(
            review(
                Polarity.NEGATIVE,
                aspects=(
                    ("quality", Polarity.NEGATIVE, f"leaks at the seam, case {index}"),
                    ("quality", Polarity.NEGATIVE, "a second quality sentence"),
                    ("delivery", Polarity.POSITIVE, "fast delivery"),
                ),
            )
        )
    state.add(review(Polarity.NEGATIVE, aspects=(("delivery", Polarity.NEGATIVE, "  late \n"),)))
    points = snapshot(state).pain_points
    assert [(p.aspect, p.mentions) for p in points] == [("quality", 5), ("delivery", 1)]
    assert points[0].examples == [f"leaks at the seam, case {i}" for i in (4, 3, 2)]
    assert points[1].examples == ["late"]


def test_pain_points_are_capped_in_aspects_and_snippet_length() -> None:
    rules = InsightRules(max_pain_points=3, snippet_chars=20)
    state = ProductInsights(rules)
    for repeat, aspect in enumerate(["a", "b", "c", "a", "b", "d", "e"]):
        state.add(
            review(Polarity.NEGATIVE, aspects=((aspect, Polarity.NEGATIVE, "x" * (30 + repeat)),))
        )
    points = snapshot(state).pain_points
    assert len(points) == 3
    assert [p.aspect for p in points][:2] == ["a", "b"]
    assert all(len(example) == 20 for p in points for example in p.examples)


def test_a_redelivered_review_is_not_counted_twice_and_the_window_is_bounded() -> None:
    rules = InsightRules(dedupe_window=4)
    state = ProductInsights(rules)
    first = uuid.uuid4()
    assert state.add(review(Polarity.NEGATIVE, event_id=first))
    assert not state.add(review(Polarity.NEGATIVE, event_id=first))
    assert state.review_count == 1
    for _ in range(4):
        state.add(review(Polarity.POSITIVE))
    assert len(state.recent_inputs) == 4
    assert state.add(review(Polarity.NEGATIVE, event_id=first)), "forgotten beyond the window"


def test_snapshot_then_restore_continues_exactly_where_it_left_off() -> None:
    original = ProductInsights(RULES)
    seen = [uuid.uuid4() for _ in range(40)]
    for index, event_id in enumerate(seen):
        label = Polarity.NEGATIVE if index % 3 == 0 else Polarity.POSITIVE
        aspects = (("quality", Polarity.NEGATIVE, f"broke #{index}"),) if index % 3 == 0 else ()
        original.add(review(label, days_ago=40 - index, aspects=aspects, event_id=event_id))
    restored = ProductInsights.restore(RULES, snapshot(original))
    assert snapshot(restored) == snapshot(original)
    # A review redelivered after the crash is recognised; a new one continues the count.
    assert not restored.add(review(Polarity.NEGATIVE, event_id=seen[-1]))
    later = review(Polarity.NEGATIVE, days_ago=-1)
    original.add(later)
    restored.add(later)
    assert snapshot(restored) == snapshot(original)
    assert restored.review_count == 41


def test_restore_accepts_an_event_written_before_the_checkpoint_existed() -> None:
    state = ProductInsights(RULES)
    for days in range(6):
        state.add(review(Polarity.POSITIVE, days))
    legacy = snapshot(state).model_copy(update={"checkpoint": None, "latest_review_at": None})
    restored = ProductInsights.restore(RULES, legacy)
    assert restored.review_count == 6
    restored.add(review(Polarity.NEGATIVE))
    assert snapshot(restored).review_count == 7
    assert windows(snapshot(restored))["7d"] == (0, 0, 1)


def insights_event(tenant: str, payload: ProductInsightsUpdatedPayload) -> ProductInsightsUpdated:
    return ProductInsightsUpdated(
        tenant_id=tenant, lineage=Lineage(model_id="m", model_revision="r"), payload=payload
    )


def test_book_keeps_tenants_apart_and_replays_the_compacted_topic() -> None:
    book = InsightsBook(RULES)
    book.add("shop-a", "p1", review(Polarity.NEGATIVE))
    book.add("shop-b", "p1", review(Polarity.POSITIVE))
    book.add("shop-b", "p1", review(Polarity.POSITIVE))
    assert len(book) == 2
    a = book.snapshot("shop-a", "p1", NOW)
    b = book.snapshot("shop-b", "p1", NOW)
    assert (a.review_count, a.mix.negative) == (1, 1)
    assert (b.review_count, b.mix.positive) == (2, 2)

    fresh = InsightsBook(RULES)
    older = insights_event("shop-a", a.model_copy(update={"review_count": 0}))
    records = [
        (b"shop-a:p1", older.to_json()),
        (b"shop-a:p1", insights_event("shop-a", a).to_json()),  # later offset wins
        (b"shop-b:p1", insights_event("shop-b", b).to_json()),
        (b"shop-c:p9", b"{not an insights event"),
    ]
    assert [fresh.load_record(key, value) for key, value in records] == [True, True, True, False]
    state_a = fresh.get("shop-a", "p1")
    assert state_a is not None
    assert state_a.review_count == 1
    assert fresh.load_record(b"shop-b:p1", None), "a tombstone forgets the product"
    assert fresh.get("shop-b", "p1") is None
    assert not fresh.load_record(b"no-separator", None)
    assert len(fresh) == 1


def test_checkpoint_buckets_are_utc_days_in_order() -> None:
    state = ProductInsights(RULES)
    for days in (3, 1, 2):
        state.add(review(Polarity.POSITIVE, days))
    checkpoint = snapshot(state).checkpoint
    assert checkpoint is not None
    assert checkpoint.bucket_hours == 24
    assert [b.start for b in checkpoint.buckets] == [
        datetime(2025, 6, day, tzinfo=UTC) for day in (27, 28, 29)
    ]


def test_hour_buckets_merge_into_days_when_the_windows_change() -> None:
    hourly = ProductInsights(InsightRules.from_names(["12h", "30d"]))
    for hours in (1, 2, 30, 50):
        hourly.add(review(Polarity.NEGATIVE, hours / 24))
    restored = ProductInsights.restore(RULES, hourly.snapshot("p1", NOW))
    assert windows(restored.snapshot("p1", NOW))["7d"] == (0, 0, 4)
    back = ProductInsights.restore(InsightRules.from_names(["12h", "30d"]), snapshot(restored))
    assert back.review_count == 4
    assert back.buckets == {}, "day buckets cannot be split into hours"
