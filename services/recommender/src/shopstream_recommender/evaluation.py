"""Next-item evaluation: replay interactions in time order and score every method side by side.

Every method sees the same events in the same order and, before each event, is asked for a
top-k list for that shopper while the product page they are on is their previous item. Two
protocols are scored from the same replay:

- ``next_item``: the next item, except an immediate re-click of the page being viewed (no
  recommender would show a page's own product on it); that product is excluded from every list.
- ``next_new_item``: only next items not yet seen in the session; every item seen in the
  session is excluded from every list (what a "you may also like" strip has to find).

Methods: ``shopstream`` (the service's own `Ranker` over `RecommenderState`), ``popularity``
(all-time counts) and ``co_occurrence`` (items seen in the same sessions as the current item,
by count, backfilled by popularity).
"""

from __future__ import annotations

import csv
import heapq
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Literal, Protocol

from shopstream.events import ActivityKind
from shopstream_recommender.config import RankingConfig, StateLimits
from shopstream_recommender.ranking import Ranker
from shopstream_recommender.state import Interaction, RecommenderState

DataFormat = Literal["sessions", "interactions"]
PROTOCOLS = ("next_item", "next_new_item")
EVAL_TENANT = "eval"
CO_OCCURRENCE_WINDOW = 10
"""The baseline pairs each click with at most this many earlier items of its session."""


@dataclass(frozen=True, slots=True)
class Click:
    user: str
    item: str
    at: float
    session: str | None = None
    rating: float | None = None


def read_clicks(path: Path, data_format: DataFormat) -> list[Click]:
    """Read a file into clicks in time order (ties keep file order).

    ``sessions``: TSV with a header naming ``SessionId``, ``ItemId``, ``Time`` (session-rec's
    layout). ``interactions``: CSV ``user,item,timestamp[,rating]``, header optional; sessions
    are then cut by inactivity like the service does.
    """
    with path.open(encoding="utf-8", newline="") as handle:
        sample = handle.read(4_096)
        handle.seek(0)
        delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
        rows = csv.reader(handle, delimiter=delimiter)
        clicks = list(_sessions(rows) if data_format == "sessions" else _interactions(rows))
    return sorted(clicks, key=lambda click: click.at)


def _sessions(rows: Iterator[list[str]]) -> Iterator[Click]:
    header = [name.strip().lower() for name in next(rows)]
    try:
        session_at, item_at, time_at = (
            header.index(name) for name in ("sessionid", "itemid", "time")
        )
    except ValueError as error:
        raise ValueError(
            f"sessions file needs SessionId, ItemId, Time columns: {header}"
        ) from error
    for row in rows:
        if row:
            session = row[session_at]
            yield Click(user=session, item=row[item_at], at=float(row[time_at]), session=session)


def _interactions(rows: Iterator[list[str]]) -> Iterator[Click]:
    for row in rows:
        if not row:
            continue
        try:
            at = float(row[2])
        except (ValueError, IndexError):
            continue  # a header, or a row without a timestamp
        rating = float(row[3]) if len(row) > 3 and row[3] else None
        yield Click(user=row[0], item=row[1], at=at, rating=rating)


class Method(Protocol):
    name: str

    def observe(self, click: Click) -> None: ...

    def recommend(self, click: Click, previous: str, seen: set[str], k: int) -> list[str]:
        """Top `k` for the shopper of `click` before it happens, `previous` excluded; `seen`
        (the session's items) is what the stricter protocol removes afterwards."""
        ...


class ShopstreamMethod:
    name = "shopstream"

    def __init__(self, config: RankingConfig, limits: StateLimits) -> None:
        self.state = RecommenderState(limits, config.kind_weights)
        self.ranker = Ranker(self.state, config)
        self._new_only: list[str] = []

    def observe(self, click: Click) -> None:
        kind = ActivityKind.RATING if click.rating is not None else ActivityKind.VIEW
        self.ranker.record(
            Interaction(
                tenant_id=EVAL_TENANT,
                user_id=click.user,
                kind=kind,
                at=click.at,
                product_id=click.item,
                session_id=click.session,
                rating=click.rating,
            )
        )

    def recommend(self, click: Click, previous: str, seen: set[str], k: int) -> list[str]:
        ranked = self.ranker.recommend(EVAL_TENANT, click.user, k, context_product_id=previous)
        items = [item.product_id for item in ranked.items]
        if any(item in seen for item in items):
            # The stricter protocol gets its own list, ranked without the session's items.
            strict = self.ranker.recommend(
                EVAL_TENANT, click.user, k, context_product_id=previous, exclude=seen
            )
            self._new_only = [item.product_id for item in strict.items]
        else:
            self._new_only = items
        return items

    def new_only(self) -> list[str]:
        return self._new_only


class PopularityMethod:
    """All-time click counts; the top list is refreshed as counts change."""

    name = "popularity"

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._top: list[str] = []
        self._stale = 0

    def observe(self, click: Click) -> None:
        self.counts[click.item] += 1
        self._stale += 1

    def top(self, size: int) -> list[str]:
        if self._stale >= max(1, len(self.counts) // 200) or len(self._top) < size:
            self._top = [
                item for item, _ in heapq.nlargest(size, self.counts.items(), key=itemgetter(1))
            ]
            self._stale = 0
        return self._top[:size]

    def recommend(self, click: Click, previous: str, seen: set[str], k: int) -> list[str]:
        return [item for item in self.top(k + len(seen) + 1) if item != previous][: k + len(seen)]


class CoOccurrenceMethod:
    """Item-to-item: items seen in the same sessions as the current one, most often first."""

    name = "co_occurrence"

    def __init__(self, popularity: PopularityMethod, session_gap_seconds: float) -> None:
        self._pairs: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._sessions: dict[str, list[str]] = {}
        self._last_at: dict[str, float] = {}
        self._popularity = popularity
        self._gap = session_gap_seconds

    def observe(self, click: Click) -> None:
        key = click.session or click.user
        if click.session is None and click.at - self._last_at.get(key, -math.inf) > self._gap:
            self._sessions[key] = []
        self._last_at[key] = click.at
        items = self._sessions.setdefault(key, [])
        for earlier in dict.fromkeys(items[-CO_OCCURRENCE_WINDOW:]):
            if earlier != click.item:
                self._pairs[earlier][click.item] += 1
                self._pairs[click.item][earlier] += 1
        items.append(click.item)

    def recommend(self, click: Click, previous: str, seen: set[str], k: int) -> list[str]:
        size = k + len(seen)
        ranked = [item for item, _ in self._pairs[previous].most_common(size + 1)]
        ranked = [item for item in ranked if item != previous][:size]
        if len(ranked) < size:
            chosen = set(ranked)
            ranked += [
                item
                for item in self._popularity.top(2 * size + 1)
                if item not in chosen and item != previous
            ][: size - len(ranked)]
        return ranked


@dataclass
class Scores:
    predictions: int = 0
    hits: int = 0
    ndcg: float = 0.0
    reciprocal_rank: float = 0.0

    def add(self, ranked: Sequence[str], target: str, k: int) -> None:
        self.predictions += 1
        for position, item in enumerate(ranked[:k]):
            if item == target:
                self.hits += 1
                self.ndcg += 1.0 / math.log2(position + 2)
                self.reciprocal_rank += 1.0 / (position + 1)
                return

    def summary(self) -> dict[str, float | int]:
        count = max(1, self.predictions)
        return {
            "predictions": self.predictions,
            "hit_rate": self.hits / count,
            "ndcg": self.ndcg / count,
            "mrr": self.reciprocal_rank / count,
        }


@dataclass
class EvalReport:
    k: int
    warmup_clicks: int
    test_clicks: int
    catalogue_items: int
    skipped_reclicks: int
    seconds: float
    scores: dict[str, dict[str, Scores]]
    recommended: dict[str, set[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "k": self.k,
            "warmup_clicks": self.warmup_clicks,
            "test_clicks": self.test_clicks,
            "catalogue_items": self.catalogue_items,
            "skipped_reclicks": self.skipped_reclicks,
            "seconds": round(self.seconds, 2),
            "protocols": {
                protocol: {method: scores.summary() for method, scores in by_method.items()}
                for protocol, by_method in self.scores.items()
            },
            "coverage": {
                method: len(items) / max(1, self.catalogue_items)
                for method, items in self.recommended.items()
            },
        }


def evaluate(
    warmup: Sequence[Click],
    test: Sequence[Click],
    *,
    config: RankingConfig,
    limits: StateLimits,
    k: int = 10,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    """Warm every method up on `warmup`, then predict each click of `test` before applying it."""
    started = time.perf_counter()
    popularity = PopularityMethod()
    shopstream = ShopstreamMethod(config, limits)
    methods: list[Method] = [
        shopstream,
        popularity,
        CoOccurrenceMethod(popularity, limits.session_gap_seconds),
    ]
    for click in warmup:
        for method in methods:
            method.observe(click)
    scores = {protocol: {method.name: Scores() for method in methods} for protocol in PROTOCOLS}
    recommended: dict[str, set[str]] = {method.name: set() for method in methods}
    plan = replay_plan(warmup, test, gap_seconds=limits.session_gap_seconds, limit=limit)
    skipped = predicted = 0
    for step in plan:
        if step.reclick:
            skipped += 1
        elif step.previous is not None:
            predicted += 1
            _score_all(
                methods,
                step.click,
                step.previous,
                step.seen,
                k=k,
                scores=scores,
                recommended=recommended,
            )
            if progress is not None:
                progress(predicted)
        for method in methods:
            method.observe(step.click)
    items = {click.item for click in (*warmup, *test)}
    return EvalReport(
        k=k,
        warmup_clicks=len(warmup),
        test_clicks=len(test),
        catalogue_items=len(items),
        skipped_reclicks=skipped,
        seconds=time.perf_counter() - started,
        scores=scores,
        recommended=recommended,
    )


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """One test click: what the shopper's session held before it, and whether it is scored."""

    click: Click
    previous: str | None
    """The page being viewed before the click; None at a session's first click (not scored)."""
    seen: set[str]
    reclick: bool
    """A re-click of the page being viewed: not scored (see the module docstring)."""


def replay_plan(
    warmup: Sequence[Click], test: Sequence[Click], *, gap_seconds: float, limit: int | None
) -> Iterator[ReplayStep]:
    """The test clicks in order, each with its session context, up to `limit` scored ones;
    shared by the in-process replay and the one through Kafka so both score the same clicks."""
    sessions = _SessionTracker(gap_seconds)
    for click in warmup:
        sessions.advance(click)
    predicted = 0
    for click in test:
        previous, seen = sessions.before(click)
        if previous is not None and limit is not None and predicted >= limit:
            return
        reclick = previous is not None and click.item == previous
        predicted += previous is not None and not reclick
        yield ReplayStep(click, previous, set(seen), reclick)
        sessions.advance(click)


def _score_all(
    methods: Iterable[Method],
    click: Click,
    previous: str,
    seen: set[str],
    *,
    k: int,
    scores: dict[str, dict[str, Scores]],
    recommended: dict[str, set[str]],
) -> None:
    new_target = click.item not in seen
    for method in methods:
        ranked = method.recommend(click, previous, seen, k)
        recommended[method.name].update(ranked[:k])
        scores["next_item"][method.name].add(ranked, click.item, k)
        if not new_target:
            continue
        if isinstance(method, ShopstreamMethod):
            strict = method.new_only()
        else:
            strict = [item for item in ranked if item not in seen]
        scores["next_new_item"][method.name].add(strict, click.item, k)


class _SessionTracker:
    """The previous item and the items so far of each shopper's current session."""

    def __init__(self, gap_seconds: float) -> None:
        self._gap = gap_seconds
        self._previous: dict[str, str] = {}
        self._seen: dict[str, set[str]] = {}
        self._session: dict[str, str | None] = {}
        self._last_at: dict[str, float] = {}

    def before(self, click: Click) -> tuple[str | None, set[str]]:
        if self._new_session(click):
            return None, set()
        return self._previous.get(click.user), self._seen.get(click.user, set())

    def advance(self, click: Click) -> None:
        if self._new_session(click):
            self._seen[click.user] = set()
        self._session[click.user] = click.session
        self._last_at[click.user] = click.at
        self._previous[click.user] = click.item
        self._seen.setdefault(click.user, set()).add(click.item)

    def _new_session(self, click: Click) -> bool:
        if click.user not in self._previous:
            return True
        if click.session is not None:
            return self._session.get(click.user) != click.session
        return click.at - self._last_at[click.user] > self._gap
