"""The recommender's in-memory state: catalogue, shoppers' histories and item-level evidence.

Pure data structures (no Kafka, no torch) so the eval replays exactly what the service does.
Time-decayed weights use *forward decay*: a weight added at time t is stored multiplied by
2^((t - t0) / half-life), so entries compare correctly without ever being touched again and no
"now" is needed; when the factor grows too large every entry is rescaled once (`_rebase`).
Every structure is bounded (users, history per user, neighbours per item) and counted in
`MemoryReport`.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from shopstream.events import ActivityKind
from shopstream_recommender.blend import BlendWeights, ContextWeights
from shopstream_recommender.config import StateLimits
from shopstream_recommender.sessions import SessionIndex

Vector = npt.NDArray[np.float32]
REBASE_EXPONENT = 200.0
"""Rescale stored weights once the growth factor passes 2^200 (far from float overflow)."""
PRODUCT_KINDS = frozenset({ActivityKind.VIEW, ActivityKind.CART, ActivityKind.PURCHASE})
BASKET_KINDS = frozenset({ActivityKind.CART, ActivityKind.PURCHASE})
ITEM_KINDS = PRODUCT_KINDS | {ActivityKind.RATING}
"""Kinds that concern one product and enter the history; searches only touch the session."""
PROFILE_DAMPING = 0.5
"""Long-term edges rank a neighbour by weight / (its total weight) ** this: between raw
co-counts (0, popular items top every row) and cosine (1, which favoured rare items and scored
lower on MovieLens 100K: HR@10 0.146 against 0.159 at 0.5)."""
REPEAT_RATE_EVENTS = 1_000
"""The repeat rates of a tenant are moving averages over about this many interactions."""
REPEAT_RATE_PRIOR = 0.25
"""Repeat rate assumed before a tenant's first interactions (re-showing items stays on)."""
REPEAT_FLOOR = 0.002
"""A repeat rate r lets already-seen items keep r / (r + this) of their score: about all of
it where shoppers often go back (sessions), none where they never do (ratings)."""


@dataclass(slots=True)
class Interaction:
    """One shopper action, decoupled from the event schema (the eval builds these directly).

    Not frozen: a frozen dataclass's constructor costs twice as much, on every activity event."""

    tenant_id: str
    user_id: str
    kind: ActivityKind
    at: float
    """Unix seconds of the event (event time, so a replay decays exactly like the live run)."""
    product_id: str | None = None
    session_id: str | None = None
    rating: float | None = None
    event_id: Hashable | None = None
    """The event's identity, used to ignore a redelivered event; None disables that check."""


@dataclass(slots=True)
class Item:
    """What ranking needs to know of a catalogue product."""

    title: str | None = None
    category: str | None = None
    available: bool = True


class ForwardDecay:
    """Converts event times to growth factors 2^((t - reference) / half-life)."""

    def __init__(self, half_life_seconds: float) -> None:
        self._rate = 1.0 / half_life_seconds
        self.reference: float | None = None

    def exponent(self, at: float) -> float:
        if self.reference is None:
            self.reference = at
        return (at - self.reference) * self._rate

    def factor_at(self, at: float) -> float:
        """Multiplies a stored weight into its decayed value as of `at`."""
        if self.reference is None:
            return 1.0
        return math.exp2(min(1_000.0, (self.reference - at) * self._rate))

    def shift(self, exponent: float) -> float:
        """Move the reference forward by `exponent` half-lives; return the rescale factor."""
        if self.reference is not None:
            self.reference += exponent / self._rate
        return math.exp2(-exponent)


_NO_ROW: Mapping[str, float] = {}


class NeighbourGraph:
    """Directed, time-decayed item-to-item weights with at most `cap` neighbours per item."""

    def __init__(self, half_life_seconds: float, cap: int, damping: float = 0.0) -> None:
        self._decay = ForwardDecay(half_life_seconds)
        self._cap = cap
        self._damping = damping
        # With damping, a target's weight is divided by (its total weight over all sources)
        # ** damping when rows are ranked and pruned: a cosine-like similarity, so an item
        # everyone has does not top every row.
        self._totals: dict[str, float] = {}
        # Pruning happens in steps, not on every insert, so it stays cheap on average.
        self._prune_at = cap + max(1, cap // 4)
        self._rows: dict[str, dict[str, float]] = {}
        # Rows sorted and scaled on first read after a change: reads outnumber writes.
        self._ranked: dict[str, list[tuple[str, float]]] = {}
        self.edges = 0

    def add(self, source: str, target: str, weight: float, at: float) -> None:
        self.add_all(((source, target, weight),), at)

    def add_all(self, edges: Iterable[tuple[str, str, float]], at: float) -> None:
        """Add (source, target, weight) edges of one moment, in order: one interaction pairs an
        item with up to a few dozen others, and the decay factor is the same for all of them
        (ingestion's hottest loop, so it is worked out once, not per edge)."""
        growth: float | None = None
        rows, ranked, totals, damping = self._rows, self._ranked, self._totals, self._damping
        prune_at = self._prune_at
        for source, target, weight in edges:
            if weight <= 0 or source == target:
                continue
            if growth is None:
                exponent = self._decay.exponent(at)
                if exponent > REBASE_EXPONENT:
                    self._rebase(exponent)
                    exponent = self._decay.exponent(at)
                growth = math.exp2(max(-1_000.0, exponent))
            ranked.pop(source, None)
            row = rows.get(source)
            if row is None:
                row = rows[source] = {}
            added = weight * growth
            if damping:
                totals[target] = totals.get(target, 0.0) + added
            current = row.get(target)
            if current is None:
                self.edges += 1
                row[target] = added
                if len(row) > prune_at:  # only a new target grows a row
                    self._prune(source, row)
            else:
                row[target] = current + added

    def _prune(self, source: str, row: dict[str, float]) -> None:
        """Keep the `cap` strongest neighbours of `source`, strongest first, ties in row order.

        A stable sort of the whole row, not `heapq.nlargest`: the same result (nlargest is
        defined as sorted(..., reverse=True)[:n]), but keeping 100 of 125 is where nlargest's
        Python loop is slowest (62 against 13 us per prune measured here; a busy graph prunes
        every few interactions)."""
        kept = sorted(self._damped(row), key=itemgetter(1), reverse=True)[: self._cap]
        self.edges -= len(row) - len(kept)
        self._rows[source] = {item: row[item] for item, _ in kept}

    def row(self, source: str) -> Mapping[str, float]:
        """Every kept neighbour of `source` with its stored (forward-decayed) weight."""
        return self._rows.get(source, _NO_ROW)

    def factor_at(self, at: float) -> float:
        """Multiplies a stored weight into its decayed value as of `at`."""
        return self._decay.factor_at(at)

    def neighbours(self, source: str, limit: int) -> list[tuple[str, float]]:
        """The strongest `limit` neighbours, strongest first, scaled so the first is 1."""
        ranked = self._ranked.get(source)
        if ranked is None:
            row = self._rows.get(source)
            if not row:
                return []
            ordered = sorted(self._damped(row), key=itemgetter(1), reverse=True)
            top = ordered[0][1]
            ranked = [(item, weight / top) for item, weight in ordered] if top > 0 else []
            self._ranked[source] = ranked
        return ranked[:limit]

    def _damped(self, row: dict[str, float]) -> list[tuple[str, float]]:
        """The row's (target, weight) pairs in row order, damped (a list: only sorted, so it
        need not be hashed into a dict)."""
        if not self._damping:
            return list(row.items())
        totals, power = self._totals, self._damping
        return [(item, weight / totals.get(item, weight) ** power) for item, weight in row.items()]

    def remove(self, item: str) -> None:
        """Forget an item's own neighbours; it stays in others' rows and is filtered at ranking."""
        self._ranked.pop(item, None)
        self._totals.pop(item, None)
        row = self._rows.pop(item, None)
        if row:
            self.edges -= len(row)

    def __len__(self) -> int:
        return len(self._rows)

    def _rebase(self, exponent: float) -> None:
        scale = self._decay.shift(exponent)
        self._ranked.clear()
        for row in self._rows.values():
            for target in row:
                row[target] *= scale
        for target in self._totals:
            self._totals[target] *= scale


class DecayedCounts:
    """Time-decayed counts per item with a cached top list.

    The top list is recomputed after a number of updates that grows with the number of items
    (every update for a tiny shop, at most every `refresh_every` for a large one), so its cost
    per event stays small and the result does not depend on wall-clock time.
    """

    def __init__(self, half_life_seconds: float, refresh_every: int, top_size: int) -> None:
        self._decay = ForwardDecay(half_life_seconds)
        self._refresh_every = refresh_every
        self._top_size = top_size
        self._counts: dict[str, float] = {}
        self._top: list[tuple[str, float]] = []
        self._stale_updates = 0
        # Items counted since the top list was made. Forward decay never lowers a stored count,
        # so the next top list is among these items and the current list, unless a removal or
        # a rebase (after which ties may order differently) broke that: `_complete` is False.
        self._touched: set[str] = set()
        self._complete = True

    def add(self, item: str, weight: float, at: float) -> None:
        if weight <= 0:
            return
        exponent = self._decay.exponent(at)
        if exponent > REBASE_EXPONENT:
            scale = self._decay.shift(exponent)
            for key in self._counts:
                self._counts[key] *= scale
            self._top = [(key, value * scale) for key, value in self._top]
            self._complete = False  # rounding may have made ties the cached order lacks
            exponent = self._decay.exponent(at)
        self._counts[item] = self._counts.get(item, 0.0) + weight * math.exp2(
            max(-1_000.0, exponent)
        )
        self._touched.add(item)
        self._stale_updates += 1

    def remove(self, item: str) -> None:
        if self._counts.pop(item, None) is not None:
            self._touched.discard(item)
            kept = [entry for entry in self._top if entry[0] != item]
            if len(kept) < len(self._top):
                self._top = kept
                self._complete = False  # an item never touched may fill the place

    def top(self, *, lazy: bool = False) -> list[tuple[str, float]]:
        """The most counted items, strongest first, with their raw (forward-decayed) counts.

        `lazy` (a rehearsal of the learned blend) also waits for a tenth of the items to have
        changed: a refresh scans every item, and rehearsals during a long ingestion would
        otherwise pay it nearly every time on a big catalogue."""
        threshold = min(self._refresh_every, max(1, len(self._counts) // 20))
        if lazy:
            threshold = max(threshold, len(self._counts) // 10)
        if self._stale_updates >= threshold or (self._stale_updates and not self._top):
            self._top = self._refreshed()
            self._stale_updates = 0
            self._touched = set()
        return self._top

    def _refreshed(self) -> list[tuple[str, float]]:
        """`_largest` of every count, from the items counted since the last refresh and the
        last top list where that gives the same answer: on 10,000 items a scan of every count
        cost the recommender's ingestion about 2 µs per event, its floats scattered in memory."""
        counts, size = self._counts, self._top_size
        if self._complete and 2 * (len(self._touched) + len(self._top)) <= len(counts):
            items = list(self._touched.union([item for item, _ in self._top]))
            values = np.array([counts[item] for item in items], dtype=np.float64)
            rows = np.argsort(-values, kind="stable")[: size + 1]
            ranked = values[rows]
            # Ties go in insertion order, which only the dict knows. Without a tie up to the
            # item after the list, no item left out can tie with its last one either: the
            # current list's items are all candidates and count at least what they did.
            if not np.any(ranked[1:] == ranked[:-1]):
                rows = rows[:size]
                return list(
                    zip([items[row] for row in rows.tolist()], values[rows].tolist(), strict=True)
                )
        self._complete = True
        return _largest(counts, size)

    def scale(self, *, lazy: bool = False) -> float:
        """1 / the top item's count: multiplies a count into [0, 1] (roughly, between
        refreshes of the top list)."""
        top = self.top(lazy=lazy)
        return 1.0 / top[0][1] if top and top[0][1] > 0 else 0.0

    @property
    def counts(self) -> Mapping[str, float]:
        """Stored (forward-decayed) counts: times `factor_at` gives the counts as of then."""
        return self._counts

    def factor_at(self, at: float) -> float:
        return self._decay.factor_at(at)

    def __len__(self) -> int:
        return len(self._counts)


def _largest(counts: dict[str, float], size: int) -> list[tuple[str, float]]:
    """The `size` largest counts, largest first, ties in insertion order: exactly
    `heapq.nlargest(size, counts.items(), key=itemgetter(1))`, in numpy (a refresh scans every
    item: 100k items took 12 ms that way and take 5 ms this way, measured here)."""
    total = len(counts)
    values = np.fromiter(counts.values(), dtype=np.float64, count=total)
    if size < total:
        threshold = np.partition(values, total - size)[total - size]
        rows = np.flatnonzero(values >= threshold)  # ascending, so ties stay in order below
    else:
        rows = np.arange(total)
    ordered = rows[np.argsort(-values[rows], kind="stable")][:size].tolist()
    keys = list(counts)
    return [(keys[row], float(values[row])) for row in ordered]


class VectorTable:
    """Unit-length item vectors of one tenant in one matrix, for batched similarity."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._matrix: Vector = np.zeros((0, 0), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: object) -> bool:
        return item in self._rows

    @property
    def nbytes(self) -> int:
        return int(self._matrix.nbytes)

    def put(self, item: str, vector: Vector) -> None:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vector))
        if norm == 0 or not math.isfinite(norm):
            self.remove(item)
            return
        if not self._ids:
            self._matrix = np.zeros((0, vector.shape[0]), dtype=np.float32)
        if self._matrix.shape[1] != vector.shape[0]:
            raise ValueError(
                f"vector of dimension {vector.shape[0]}; this table holds {self._matrix.shape[1]}"
            )
        row = self._rows.get(item)
        if row is None:
            row = len(self._ids)
            if row >= self._matrix.shape[0]:
                grown = np.zeros((max(16, 2 * row), vector.shape[0]), dtype=np.float32)
                grown[:row] = self._matrix[:row]
                self._matrix = grown
            self._ids.append(item)
            self._rows[item] = row
        self._matrix[row] = vector / norm

    def remove(self, item: str) -> None:
        row = self._rows.pop(item, None)
        if row is None:
            return
        last = len(self._ids) - 1
        if row != last:
            moved = self._ids[last]
            self._ids[row] = moved
            self._rows[moved] = row
            self._matrix[row] = self._matrix[last]
        self._ids.pop()

    def get(self, item: str) -> Vector | None:
        row = self._rows.get(item)
        return None if row is None else self._matrix[row]

    def stack(self, items: Iterable[str]) -> tuple[list[str], Vector]:
        """The items that have vectors, and their vectors as rows."""
        present = [item for item in items if item in self._rows]
        return present, self._matrix[[self._rows[item] for item in present]]

    def nearest(self, query: Vector, limit: int) -> tuple[list[tuple[str, float]], float]:
        """The `limit` items most similar to `query` (cosine), most similar first, and the
        mean similarity of `query` to every item (what "unrelated" looks like here)."""
        count = len(self._ids)
        if count == 0:
            return [], 0.0
        similarities = self._matrix[:count] @ query
        typical = float(similarities.mean())
        if limit <= 0:
            return [], typical
        if limit < count:
            chosen = np.argpartition(-similarities, limit)[:limit]
        else:
            chosen = np.arange(count)
        ordered = chosen[np.argsort(-similarities[chosen], kind="stable")]
        return [(self._ids[row], float(similarities[row])) for row in ordered], typical


@dataclass(frozen=True, slots=True)
class Visit:
    """One entry of a shopper's history."""

    product_id: str
    kind: ActivityKind
    at: float
    session: str
    weight: float


class Profile:
    """A shopper's long-term profile: distinct items with recency-decayed weights.

    Recency is counted in the shopper's own interactions (forward decay on a per-shopper
    clock), so a shopper's profile does not fade while they are away. At most `cap` items are
    kept (pruned in steps, weakest first).
    """

    __slots__ = ("_clock", "weights")

    def __init__(self) -> None:
        self.weights: dict[str, float] = {}
        self._clock = 0.0

    def add(self, item: str, weight: float, half_life_events: float, cap: int) -> int:
        """Add one interaction; returns the change in the number of items kept."""
        exponent = self._clock / half_life_events
        if exponent > REBASE_EXPONENT:
            scale = math.exp2(-exponent)
            for key in self.weights:
                self.weights[key] *= scale
            self._clock = 0.0
            exponent = 0.0
        before = len(self.weights)
        self.weights[item] = self.weights.get(item, 0.0) + weight * math.exp2(exponent)
        self._clock += 1.0
        if len(self.weights) > cap + max(1, cap // 4):
            # sorted()[:cap] is nlargest(cap) by definition, and faster when cap is most of it.
            ranked = sorted(self.weights.items(), key=itemgetter(1), reverse=True)
            self.weights = dict(ranked[:cap])
        return len(self.weights) - before

    def top(self, limit: int) -> list[tuple[str, float]]:
        """The `limit` strongest items, strongest first, scaled so the first is 1."""
        ranked = heapq.nlargest(limit, self.weights.items(), key=itemgetter(1))
        if not ranked or ranked[0][1] <= 0:
            return []
        top = ranked[0][1]
        return [(item, weight / top) for item, weight in ranked]

    def __len__(self) -> int:
        return len(self.weights)

    def __contains__(self, item: object) -> bool:
        return item in self.weights


class RepeatRates:
    """How often a tenant's shoppers go back to an item they already had: in the same
    session, and from an earlier session. Learned from the activity, one event at a time."""

    __slots__ = ("history", "session")

    def __init__(self) -> None:
        self.session = REPEAT_RATE_PRIOR
        self.history = REPEAT_RATE_PRIOR

    def observe(self, in_session: bool, in_history: bool) -> None:
        rate = 1.0 / REPEAT_RATE_EVENTS
        self.session += rate * (float(in_session) - self.session)
        self.history += rate * (float(in_history) - self.history)

    @staticmethod
    def keep(rate: float) -> float:
        return rate / (rate + REPEAT_FLOOR)


@dataclass(slots=True)
class UserState:
    history: deque[Visit]
    user_id: str = ""
    profile: Profile = field(default_factory=Profile)
    purchased: OrderedDict[str, None] = field(default_factory=OrderedDict)
    session: str = ""
    last_at: float = -math.inf
    sessions_started: int = 0
    recent_events: OrderedDict[Hashable, None] = field(default_factory=OrderedDict)

    def session_items(self) -> Iterator[Visit]:
        """This session's visits, newest first (the newest run of visits of the session)."""
        for visit in reversed(self.history):
            if visit.session != self.session:
                return
            yield visit


@dataclass(slots=True)
class TenantState:
    catalogue: dict[str, Item]
    deleted: set[str]
    vectors: VectorTable
    next_item: NeighbourGraph
    co_viewed: NeighbourGraph
    co_bought: NeighbourGraph
    popularity: DecayedCounts
    trending: DecayedCounts
    co_profile: NeighbourGraph
    """Long-term item-to-item edges: items in the same shopper's history, across sessions."""
    sessions: SessionIndex
    """Recent sessions as item sets, for session-kNN."""
    repeats: RepeatRates = field(default_factory=RepeatRates)
    blend: BlendWeights | None = None
    """The tenant's learned signal weights (`Ranker` creates them on first use)."""
    context: ContextWeights | None = None
    """The tenant's learned weights of the second stage (`Ranker` creates them)."""

    def recommendable(self, item: str) -> bool:
        if item in self.deleted:
            return False
        known = self.catalogue.get(item)
        return known is None or known.available

    def display_name(self, item: str) -> str:
        known = self.catalogue.get(item)
        return known.title if known is not None and known.title else item


@dataclass(frozen=True)
class MemoryReport:
    tenants: int
    users: int
    history_entries: int
    catalogue_items: int
    item_vectors: int
    neighbour_edges: int
    session_entries: int
    """Items of the recent sessions kept for session-kNN (`SessionIndex`)."""
    estimated_bytes: int
    """Rough: per-entry costs of CPython dicts and objects, plus the vector matrices."""


# Rough CPython sizes (dict slot + key reference + boxed float, object with slots, ...).
BYTES_PER_EDGE = 100
BYTES_PER_VISIT = 120
BYTES_PER_PROFILE_ITEM = 100
BYTES_PER_USER = 600
BYTES_PER_ITEM = 400
BYTES_PER_SESSION_ENTRY = 110
"""A session's item (dict slot, key reference) plus its slot in the item's deque."""


class RecommenderState:
    """Everything the ranker reads, updated one interaction or product at a time."""

    def __init__(self, limits: StateLimits, kind_weights: Mapping[ActivityKind, float]) -> None:
        self.limits = limits
        self._kind_weights = dict(kind_weights)
        self._tenants: dict[str, TenantState] = {}
        self._users: OrderedDict[tuple[str, str], UserState] = OrderedDict()
        self.interactions = 0
        self.duplicates = 0
        self._visits = 0
        self._profile_entries = 0

    def tenant(self, tenant_id: str) -> TenantState:
        state = self._tenants.get(tenant_id)
        if state is None:
            hours = 3_600.0
            limits = self.limits
            cap = limits.neighbours_per_item
            state = TenantState(
                catalogue={},
                deleted=set(),
                vectors=VectorTable(),
                next_item=NeighbourGraph(limits.co_occurrence_half_life_hours * hours, cap),
                co_viewed=NeighbourGraph(limits.co_occurrence_half_life_hours * hours, cap),
                co_bought=NeighbourGraph(limits.co_occurrence_half_life_hours * hours, cap),
                popularity=DecayedCounts(
                    limits.popularity_half_life_hours * hours, limits.prior_refresh_events, 500
                ),
                trending=DecayedCounts(
                    limits.trending_half_life_hours * hours, limits.prior_refresh_events, 500
                ),
                co_profile=NeighbourGraph(
                    limits.profile_edge_half_life_hours * hours, cap, PROFILE_DAMPING
                ),
                sessions=SessionIndex(
                    limits.sessions_per_tenant,
                    limits.history_per_user,
                    limits.sessions_per_item,
                ),
            )
            self._tenants[tenant_id] = state
        return state

    def has_tenant(self, tenant_id: str) -> bool:
        return tenant_id in self._tenants

    def user(self, tenant_id: str, user_id: str) -> UserState | None:
        return self._users.get((tenant_id, user_id))

    def already_applied(self, interaction: Interaction) -> bool:
        """True for a redelivered event that `record` would ignore."""
        if interaction.event_id is None:
            return False
        user = self._users.get((interaction.tenant_id, interaction.user_id))
        return user is not None and interaction.event_id in user.recent_events

    def tenants(self) -> Iterator[TenantState]:
        return iter(self._tenants.values())

    def users(self) -> Iterator[tuple[tuple[str, str], UserState]]:
        return iter(self._users.items())

    def interaction_weight(self, kind: ActivityKind, rating: float | None) -> float:
        weight = self._kind_weights.get(kind, 0.0)
        if kind == ActivityKind.RATING and rating is not None:
            weight *= max(0.0, (rating - 2.5) / 2.5)
        return weight

    def record(self, interaction: Interaction) -> bool:
        """Apply one interaction; False when it was already applied (a redelivered event)."""
        key = (interaction.tenant_id, interaction.user_id)
        user = self._users.get(key)
        if user is None:
            user = UserState(
                history=deque(maxlen=self.limits.history_per_user), user_id=interaction.user_id
            )
            self._users[key] = user
            if len(self._users) > self.limits.max_users:
                _, forgotten = self._users.popitem(last=False)
                self._visits -= len(forgotten.history)
                self._profile_entries -= len(forgotten.profile)
        else:
            self._users.move_to_end(key)
        if interaction.event_id is not None:
            if interaction.event_id in user.recent_events:
                self.duplicates += 1
                return False
            user.recent_events[interaction.event_id] = None
            if len(user.recent_events) > self.limits.history_per_user:
                user.recent_events.popitem(last=False)
        self.interactions += 1
        self._advance_session(user, interaction)
        product = interaction.product_id
        weight = self.interaction_weight(interaction.kind, interaction.rating)
        if product is None or interaction.kind not in ITEM_KINDS:
            return True
        tenant = self.tenant(interaction.tenant_id)
        # An item the profile lacks is new to the shopper (history entries are in the profile
        # unless weightless or pruned), which spares the session scan on most events.
        known = product in user.profile
        in_session = known and any(visit.product_id == product for visit in user.session_items())
        tenant.repeats.observe(in_session, known and not in_session)
        if weight > 0:
            self._learn_pairs(tenant, user, product, interaction, weight)
            self._learn_profile_pairs(tenant, user, product, interaction.at, weight)
            tenant.popularity.add(product, weight, interaction.at)
            tenant.trending.add(product, weight, interaction.at)
            tenant.sessions.add((interaction.user_id, user.session), product, interaction.at)
            self._profile_entries += user.profile.add(
                product, weight, self.limits.profile_half_life_events, self.limits.profile_items
            )
        self._visits += len(user.history) < self.limits.history_per_user
        user.history.append(Visit(product, interaction.kind, interaction.at, user.session, weight))
        if interaction.kind == ActivityKind.PURCHASE and self.limits.purchases_per_user:
            user.purchased[product] = None
            user.purchased.move_to_end(product)
            if len(user.purchased) > self.limits.purchases_per_user:
                user.purchased.popitem(last=False)
        return True

    def _advance_session(self, user: UserState, interaction: Interaction) -> None:
        if interaction.session_id is not None:
            session = "s:" + interaction.session_id
            if session != user.session:
                user.sessions_started += 1
            user.session = session
        elif interaction.at - user.last_at > self.limits.session_gap_seconds:
            user.sessions_started += 1
            user.session = f"g:{user.sessions_started}"
        user.last_at = max(user.last_at, interaction.at)

    def _learn_pairs(
        self,
        tenant: TenantState,
        user: UserState,
        product: str,
        interaction: Interaction,
        weight: float,
    ) -> None:
        at = interaction.at
        distance = 0
        seen: set[str] = {product}
        basket = interaction.kind in BASKET_KINDS
        next_item: list[tuple[str, str, float]] = []
        co_viewed: list[tuple[str, str, float]] = []
        co_bought: list[tuple[str, str, float]] = []
        for visit in user.session_items():
            if visit.product_id in seen:
                continue
            seen.add(visit.product_id)
            distance += 1
            if distance > self.limits.pair_window:
                break
            near = weight / distance
            next_item.append((visit.product_id, product, near))
            co_viewed += ((visit.product_id, product, near), (product, visit.product_id, near))
            if basket and visit.kind in BASKET_KINDS:
                paired = min(weight, visit.weight)
                co_bought += (
                    (visit.product_id, product, paired),
                    (product, visit.product_id, paired),
                )
        tenant.next_item.add_all(next_item, at)
        tenant.co_viewed.add_all(co_viewed, at)
        tenant.co_bought.add_all(co_bought, at)

    def _learn_profile_pairs(
        self, tenant: TenantState, user: UserState, product: str, at: float, weight: float
    ) -> None:
        """Pair the item with the shopper's most recent distinct items, across sessions."""
        window = self.limits.profile_pair_window
        if window <= 0:
            return
        seen: set[str] = {product}
        edges: list[tuple[str, str, float]] = []
        for visit in reversed(user.history):
            if visit.product_id in seen or visit.weight <= 0:
                continue
            seen.add(visit.product_id)
            paired = min(weight, visit.weight)
            edges += ((visit.product_id, product, paired), (product, visit.product_id, paired))
            if len(seen) > window:
                break
        tenant.co_profile.add_all(edges, at)

    def upsert_product(self, tenant_id: str, product_id: str, item: Item) -> None:
        tenant = self.tenant(tenant_id)
        tenant.catalogue[product_id] = item
        tenant.deleted.discard(product_id)

    def delete_product(self, tenant_id: str, product_id: str) -> None:
        tenant = self.tenant(tenant_id)
        tenant.catalogue.pop(product_id, None)
        tenant.deleted.add(product_id)
        tenant.vectors.remove(product_id)
        for graph in (tenant.next_item, tenant.co_viewed, tenant.co_bought, tenant.co_profile):
            graph.remove(product_id)
        tenant.popularity.remove(product_id)
        tenant.trending.remove(product_id)
        tenant.sessions.remove_item(product_id)

    def put_vector(self, tenant_id: str, product_id: str, vector: Vector) -> None:
        tenant = self.tenant(tenant_id)
        if product_id not in tenant.deleted:
            tenant.vectors.put(product_id, vector)

    def memory(self) -> MemoryReport:
        """Sizes of the state; cheap (per tenant, not per user or item) so metrics can poll it."""
        edges = sum(
            graph.edges
            for tenant in self._tenants.values()
            for graph in (tenant.next_item, tenant.co_viewed, tenant.co_bought, tenant.co_profile)
        )
        visits = self._visits
        items = sum(len(tenant.catalogue) for tenant in self._tenants.values())
        vectors = sum(len(tenant.vectors) for tenant in self._tenants.values())
        vector_bytes = sum(tenant.vectors.nbytes for tenant in self._tenants.values())
        session_entries = sum(tenant.sessions.entries for tenant in self._tenants.values())
        return MemoryReport(
            tenants=len(self._tenants),
            users=len(self._users),
            history_entries=visits,
            catalogue_items=items,
            item_vectors=vectors,
            neighbour_edges=edges,
            session_entries=session_entries,
            estimated_bytes=edges * BYTES_PER_EDGE
            + session_entries * BYTES_PER_SESSION_ENTRY
            + visits * BYTES_PER_VISIT
            + self._profile_entries * BYTES_PER_PROFILE_ITEM
            + len(self._users) * BYTES_PER_USER
            + items * BYTES_PER_ITEM
            + vector_bytes,
        )
