"""Rolling review insights per (tenant, product), bounded in memory and resumable after a restart.

What a product's state holds, and its bound:
* all-time review count and sentiment mix (three integers);
* one mix per time bucket of the reviews' `occurred_at` (a UTC day, or an hour when a window
  is not a whole number of days), only as far back as the longest window;
* per negative aspect the number of reviews mentioning it and the newest example snippets
  (at most `max_pain_points` aspects x `examples_per_pain_point` snippets of `snippet_chars`);
* digests of the last `dedupe_window` input events counted.

Windows (`7d`, `30d`, `12h`, ...) end with the bucket of the newest review counted (event time,
not the wall clock), so the same reviews always give the same insights, whenever they are
processed or replayed.

Trend and alert. The *recent* window is the shortest configured window; the *baseline* is every
review of the product before it. `trend` is the recent negative share minus the baseline's.
The alert fires when both the recent window and the baseline hold at least `alert_min_reviews`
reviews and the negative share rose by at least `alert_jump` (an absolute difference of shares,
e.g. 0.10 -> 0.35 with a jump of 0.2). Requiring a baseline means a brand-new product cannot
alert against itself; requiring a minimum count keeps two bad reviews from paging anyone.

Restart. Every insights event carries the product's whole state (the `checkpoint` block holds
the bucket counts and dedupe digests), and the insights topic is compacted, so its latest
record per key *is* the state store: on start the service reads that topic to its end and
resumes. Replaying the reviews instead would need the model to run again over every review ever
received, and the reviews topic is not compacted, so retention would silently drop history; the
compacted topic costs one small record per product whatever the number of reviews, and start-up
reads one record per product rather than every review.

At-least-once delivery redelivers reviews whose insights were already published before a crash;
the dedupe digests make counting them again a no-op, so counts stay exact across restarts.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError

from shopstream.events import (
    AspectFinding,
    InsightsCheckpoint,
    MixBucket,
    PainPoint,
    Polarity,
    ProductInsightsUpdated,
    ProductInsightsUpdatedPayload,
    SentimentMix,
    WindowSummary,
    parse_key,
)

ALL_TIME = "all"
_WINDOW = re.compile(r"^([1-9][0-9]{0,4})([dh])$")
HOUR_SECONDS = 3_600
# The insights event schema caps these lists; the rules may not ask for more.
MAX_PAIN_POINTS = 20
MAX_EXAMPLES = 5
MAX_WINDOWS = 9
MAX_BUCKETS = 2_000


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    hours: int


def parse_window(text: str) -> Window:
    name = text.strip()
    match = _WINDOW.match(name)
    if match is None:
        raise ValueError(f"insight window {text!r} is not a span such as '7d' or '12h'")
    count, unit = int(match.group(1)), match.group(2)
    return Window(name, count * 24 if unit == "d" else count)


@dataclass(frozen=True)
class InsightRules:
    windows: tuple[Window, ...] = (Window("7d", 7 * 24), Window("30d", 30 * 24))
    """Rolling windows, shortest first; `all` is always reported as well."""
    alert_min_reviews: int = 5
    """Reviews needed in the recent window and in the baseline before an alert may fire."""
    alert_jump: float = 0.2
    """Rise of the negative share (recent minus baseline) that raises the alert."""
    max_pain_points: int = 10
    examples_per_pain_point: int = 3
    snippet_chars: int = 200
    dedupe_window: int = 128
    """Input events remembered per product; covers any batch redelivered after a crash as long
    as one batch holds fewer reviews of one product than this."""

    def __post_init__(self) -> None:
        if not 0 < len(self.windows) <= MAX_WINDOWS:
            raise ValueError(f"between 1 and {MAX_WINDOWS} insight windows are needed")
        spans = [window.hours for window in self.windows]
        if spans != sorted(set(spans)):
            raise ValueError("insight windows must be distinct and sorted shortest first")
        if self.history_buckets > MAX_BUCKETS:
            raise ValueError(
                f"the longest window spans {self.history_buckets} buckets of "
                f"{self.bucket_hours} h; at most {MAX_BUCKETS} are kept per product"
            )
        if self.alert_min_reviews < 1 or not 0 < self.alert_jump <= 1:
            raise ValueError("alert_min_reviews must be >= 1 and alert_jump in (0, 1]")
        if not 1 <= self.max_pain_points <= MAX_PAIN_POINTS:
            raise ValueError(f"max_pain_points must be between 1 and {MAX_PAIN_POINTS}")
        if not 1 <= self.examples_per_pain_point <= MAX_EXAMPLES:
            raise ValueError(f"examples_per_pain_point must be between 1 and {MAX_EXAMPLES}")
        if self.snippet_chars < 20 or self.dedupe_window < 1:
            raise ValueError("snippet_chars must be >= 20 and dedupe_window >= 1")

    @classmethod
    def from_names(
        cls, names: Iterable[str], *, alert_min_reviews: int = 5, alert_jump: float = 0.2
    ) -> InsightRules:
        """Rules from window names such as `["7d", "30d", "all"]` (`all` is implicit)."""
        parsed = {parse_window(name) for name in names if name.strip() != ALL_TIME}
        windows = tuple(sorted(parsed, key=lambda window: window.hours))
        return cls(windows=windows, alert_min_reviews=alert_min_reviews, alert_jump=alert_jump)

    @property
    def recent(self) -> Window:
        return self.windows[0]

    @property
    def bucket_hours(self) -> int:
        # Day buckets whenever possible: 30 of them cover a month, where hours would need 720.
        return 24 if all(window.hours % 24 == 0 for window in self.windows) else 1

    @property
    def history_buckets(self) -> int:
        return self.windows[-1].hours // self.bucket_hours

    def bucket_of(self, moment: datetime) -> int:
        return int(moment.timestamp()) // (self.bucket_hours * HOUR_SECONDS)

    def bucket_start(self, bucket: int) -> datetime:
        return datetime.fromtimestamp(bucket * self.bucket_hours * HOUR_SECONDS, UTC)


@dataclass(slots=True)
class Tally:
    positive: int = 0
    neutral: int = 0
    negative: int = 0

    def add(self, label: Polarity) -> None:
        if label is Polarity.POSITIVE:
            self.positive += 1
        elif label is Polarity.NEGATIVE:
            self.negative += 1
        else:
            self.neutral += 1

    def include(self, other: Tally) -> None:
        self.positive += other.positive
        self.neutral += other.neutral
        self.negative += other.negative

    def without(self, other: Tally) -> Tally:
        return Tally(
            max(0, self.positive - other.positive),
            max(0, self.neutral - other.neutral),
            max(0, self.negative - other.negative),
        )

    @property
    def total(self) -> int:
        return self.positive + self.neutral + self.negative

    @property
    def negative_share(self) -> float:
        return self.negative / self.total if self.total else 0.0

    def to_mix(self) -> SentimentMix:
        return SentimentMix(positive=self.positive, neutral=self.neutral, negative=self.negative)

    @classmethod
    def of(cls, mix: SentimentMix) -> Tally:
        return cls(mix.positive, mix.neutral, mix.negative)


@dataclass(frozen=True, slots=True)
class ScoredReview:
    """What the insights need from one scored review."""

    event_id: uuid.UUID
    occurred_at: datetime
    label: Polarity
    aspects: Sequence[AspectFinding] = ()


@dataclass(slots=True)
class PainTally:
    mentions: int
    examples: deque[str]
    """Newest first."""


def input_digest(event_id: uuid.UUID) -> str:
    # 64 bits of a random UUID: collisions among one product's last few hundred inputs are
    # negligible, and the checkpoint stays a few kilobytes.
    return event_id.hex[:16]


@dataclass
class ProductInsights:
    rules: InsightRules
    mix: Tally = field(default_factory=Tally)
    buckets: dict[int, Tally] = field(default_factory=dict)
    latest_review_at: datetime | None = None
    pain: dict[str, PainTally] = field(default_factory=dict)
    recent_inputs: deque[str] = field(default_factory=deque)
    _recent_lookup: set[str] = field(default_factory=set)

    @property
    def review_count(self) -> int:
        return self.mix.total

    def add(self, review: ScoredReview) -> bool:
        """Count one review; False (and no change) when this input was counted already."""
        digest = input_digest(review.event_id)
        if digest in self._recent_lookup:
            return False
        self._remember(digest)
        self.mix.add(review.label)
        occurred_at = review.occurred_at.astimezone(UTC)
        if self.latest_review_at is None or occurred_at > self.latest_review_at:
            self.latest_review_at = occurred_at
        bucket = self.rules.bucket_of(occurred_at)
        if bucket > self._last_bucket_before_history():
            self.buckets.setdefault(bucket, Tally()).add(review.label)
        self._prune_buckets()
        self._count_pain(review.aspects)
        return True

    def _remember(self, digest: str) -> None:
        self.recent_inputs.append(digest)
        self._recent_lookup.add(digest)
        while len(self.recent_inputs) > self.rules.dedupe_window:
            self._recent_lookup.discard(self.recent_inputs.popleft())

    def _reference_bucket(self) -> int | None:
        if self.latest_review_at is None:
            return None
        return self.rules.bucket_of(self.latest_review_at)

    def _last_bucket_before_history(self) -> int:
        reference = self._reference_bucket()
        if reference is None:
            return -(2**62)
        return reference - self.rules.history_buckets

    def _prune_buckets(self) -> None:
        cutoff = self._last_bucket_before_history()
        for bucket in [bucket for bucket in self.buckets if bucket <= cutoff]:
            del self.buckets[bucket]

    def _count_pain(self, aspects: Sequence[AspectFinding]) -> None:
        # One review counts once per aspect, however many of its sentences complain about it:
        # `mentions` reads as "reviews complaining about X".
        snippets: dict[str, str] = {}
        for finding in aspects:
            if finding.polarity is Polarity.NEGATIVE and finding.aspect not in snippets:
                snippets[finding.aspect] = self._clip(finding.snippet)
        for aspect, snippet in snippets.items():
            tally = self.pain.get(aspect)
            if tally is None:
                self._make_room_for_aspect()
                tally = self.pain[aspect] = PainTally(
                    0, deque(maxlen=self.rules.examples_per_pain_point)
                )
            tally.mentions += 1
            if snippet and snippet not in tally.examples:
                tally.examples.appendleft(snippet)

    def _make_room_for_aspect(self) -> None:
        if len(self.pain) >= self.rules.max_pain_points:
            weakest = min(self.pain, key=lambda aspect: (self.pain[aspect].mentions, aspect))
            del self.pain[weakest]

    def _clip(self, snippet: str) -> str:
        text = " ".join(snippet.split())
        limit = self.rules.snippet_chars
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def window_tally(self, window: Window) -> Tally:
        reference = self._reference_bucket()
        tally = Tally()
        if reference is None:
            return tally
        last_excluded = reference - window.hours // self.rules.bucket_hours
        for bucket, counts in self.buckets.items():
            if bucket > last_excluded:
                tally.include(counts)
        return tally

    def snapshot(self, product_id: str, updated_at: datetime) -> ProductInsightsUpdatedPayload:
        recent = self.window_tally(self.rules.recent)
        baseline = self.mix.without(recent)
        comparable = recent.total > 0 and baseline.total > 0
        trend = recent.negative_share - baseline.negative_share if comparable else 0.0
        alert = (
            recent.total >= self.rules.alert_min_reviews
            and baseline.total >= self.rules.alert_min_reviews
            and trend >= self.rules.alert_jump
        )
        reason = None
        if alert:
            reason = (
                f"negative share {recent.negative_share:.0%} in the last "
                f"{self.rules.recent.name} ({recent.negative} of {recent.total}) vs "
                f"{baseline.negative_share:.0%} before ({baseline.negative} of {baseline.total})"
            )
        windows = [
            _summary(window.name, self.window_tally(window)) for window in self.rules.windows
        ]
        windows.append(_summary(ALL_TIME, self.mix))
        return ProductInsightsUpdatedPayload(
            product_id=product_id,
            review_count=self.review_count,
            mix=self.mix.to_mix(),
            windows=windows,
            trend=max(-1.0, min(1.0, trend)),
            pain_points=self._pain_points(),
            alert=alert,
            alert_reason=reason,
            updated_at=updated_at,
            latest_review_at=self.latest_review_at,
            checkpoint=InsightsCheckpoint(
                bucket_hours=self.rules.bucket_hours,
                buckets=[
                    MixBucket(
                        start=self.rules.bucket_start(bucket),
                        positive=counts.positive,
                        neutral=counts.neutral,
                        negative=counts.negative,
                    )
                    for bucket, counts in sorted(self.buckets.items())
                ],
                recent_inputs=list(self.recent_inputs),
            ),
        )

    def _pain_points(self) -> list[PainPoint]:
        ranked = sorted(self.pain.items(), key=lambda item: (-item[1].mentions, item[0]))
        return [
            PainPoint(aspect=aspect, mentions=tally.mentions, examples=list(tally.examples))
            for aspect, tally in ranked
        ]

    @classmethod
    def restore(
        cls, rules: InsightRules, payload: ProductInsightsUpdatedPayload
    ) -> ProductInsights:
        """Resume from the last published snapshot (rules may have changed since)."""
        state = cls(
            rules=rules, mix=Tally.of(payload.mix), latest_review_at=payload.latest_review_at
        )
        checkpoint = payload.checkpoint or InsightsCheckpoint()
        # Buckets merge into wider ones (hours into days) when the windows changed since; wider
        # ones cannot be split, so they are dropped and the windows refill from new reviews.
        if rules.bucket_hours % checkpoint.bucket_hours == 0:
            for stored in checkpoint.buckets:
                counts = Tally(stored.positive, stored.neutral, stored.negative)
                state.buckets.setdefault(rules.bucket_of(stored.start), Tally()).include(counts)
        state._prune_buckets()
        for digest in checkpoint.recent_inputs[-rules.dedupe_window :]:
            state._remember(digest)
        for point in payload.pain_points[: rules.max_pain_points]:
            examples = point.examples[: rules.examples_per_pain_point]
            state.pain[point.aspect] = PainTally(
                point.mentions, deque(examples, maxlen=rules.examples_per_pain_point)
            )
        return state


def _summary(name: str, tally: Tally) -> WindowSummary:
    return WindowSummary(window=name, mix=tally.to_mix(), negative_share=tally.negative_share)


ProductKey = tuple[str, str]


class InsightsBook:
    """Every product's insights that this replica has seen, keyed by (tenant, product)."""

    def __init__(self, rules: InsightRules) -> None:
        self.rules = rules
        self._products: dict[ProductKey, ProductInsights] = {}

    def __len__(self) -> int:
        return len(self._products)

    def get(self, tenant_id: str, product_id: str) -> ProductInsights | None:
        return self._products.get((tenant_id, product_id))

    def add(self, tenant_id: str, product_id: str, review: ScoredReview) -> bool:
        key = (tenant_id, product_id)
        state = self._products.get(key)
        if state is None:
            state = self._products[key] = ProductInsights(self.rules)
        return state.add(review)

    def snapshot(
        self, tenant_id: str, product_id: str, updated_at: datetime
    ) -> ProductInsightsUpdatedPayload:
        return self._products[(tenant_id, product_id)].snapshot(product_id, updated_at)

    def restore(self, event: ProductInsightsUpdated) -> None:
        key = (event.tenant_id, event.payload.product_id)
        self._products[key] = ProductInsights.restore(self.rules, event.payload)

    def load_record(self, key: bytes | None, value: bytes | None) -> bool:
        """Apply one record of the compacted insights topic; False if it was not usable.

        Records are applied in offset order, so the latest per key wins, exactly as compaction
        will eventually leave it. A tombstone (no value) forgets the product.
        """
        if value is None:
            parsed = parse_key(key)
            if parsed is None:
                return False
            self._products.pop(parsed, None)
            return True
        try:
            event = ProductInsightsUpdated.model_validate_json(value)
        except ValidationError:
            return False
        self.restore(event)
        return True
