"""Rank items for one shopper: blend the signals, filter, diversify, explain.

Pure functions over `RecommenderState` (no Kafka, no torch); the service and the eval call the
same `Ranker.recommend`, and apply activity through the same `Ranker.record`, which first lets
the tenant's blend learn from it (`shopstream_recommender.blend`). The blend is described in
`shopstream_recommender.config`.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from operator import itemgetter
from typing import Any, Generic, TypeVar

import numpy as np

from shopstream_recommender.blend import BlendWeights, ContextWeights, Matrix, head_rows
from shopstream_recommender.config import RankingConfig
from shopstream_recommender.rerank import CONTEXT_FEATURES, context_features
from shopstream_recommender.state import (
    ITEM_KINDS,
    Interaction,
    NeighbourGraph,
    RecommenderState,
    RepeatRates,
    TenantState,
    UserState,
    Vector,
)

TWO_HOP_ANCHORS = 2
"""Only the newest anchors are expanded two steps, which bounds the work per request."""
TWO_HOP_FIRST = 10
TWO_HOP_SECOND = 20
SESSION_RECENCY_STEP = 0.1
SESSION_RECENCY_FLOOR = 0.1
"""Session-kNN weighs the current session's newest item 1, the one before 0.9, and so on down
to 0.1 (linear, as in V-SKNN: the anchors' 0.6 per step scored lower on YOOCHOOSE)."""


class Signal(StrEnum):
    NEXT_ITEM = "next_item"
    CO_BOUGHT = "co_bought"
    CO_VIEWED = "co_viewed"
    CONTENT = "content"
    PROFILE = "profile"
    LIKED_TOGETHER = "liked_together"
    SIMILAR_SESSIONS = "similar_sessions"
    REVISIT = "revisit"
    TRENDING = "trending"
    POPULAR = "popular"


ANCHORED_REASONS = {
    Signal.NEXT_ITEM: "often viewed next after {anchor}",
    Signal.CO_BOUGHT: "bought with {anchor}",
    Signal.CO_VIEWED: "viewed together with {anchor}",
    Signal.CONTENT: "similar to {anchor}",
    Signal.PROFILE: "for fans of {anchor}, from your history",
    Signal.LIKED_TOGETHER: "liked by fans of {anchor}",
    Signal.SIMILAR_SESSIONS: "next in sessions like yours with {anchor}",
}
PRIOR_REASONS = {Signal.TRENDING: "trending in {place}", Signal.POPULAR: "popular in {place}"}
REVISIT_REASON = "you viewed this recently"
REASON_PRIORITY = {
    Signal.CO_BOUGHT: 3.0,
    Signal.NEXT_ITEM: 1.0,
    Signal.CO_VIEWED: 1.0,
    Signal.CONTENT: 1.0,
    Signal.PROFILE: 1.0,
    Signal.LIKED_TOGETHER: 1.0,
    Signal.SIMILAR_SESSIONS: 0.2,
    Signal.REVISIT: 1.0,
    Signal.TRENDING: 0.5,
    Signal.POPULAR: 0.5,
}
"""How strongly each signal's contribution claims the reason: "bought with" explains more
to a shopper than "viewed together", and a prior explains least. Session-kNN's weight is 4x
the item-to-item signals', and only a fifth of it claims the reason: "often viewed next after
kettle" names one item the shopper knows, so it wins wherever both signals are about as
strong."""


@dataclass(frozen=True, slots=True)
class Recommendation:
    product_id: str
    score: float
    reason: str
    signal: Signal
    """The signal that contributed most to the score (and gave the reason)."""


@dataclass(frozen=True, slots=True)
class Ranking:
    items: list[Recommendation]
    cold_start: bool
    """The shopper had no history: the answer rests on the priors (and the page's product)."""


@dataclass(frozen=True, slots=True)
class Anchor:
    product_id: str
    weight: float


SIGNALS = tuple(Signal)
"""The order of the signals in a tenant's `BlendWeights` and in rehearsal features."""
Entry = TypeVar("Entry")


def configured_weights(config: RankingConfig) -> dict[Signal, float]:
    """The blend's starting weights, from the settings."""
    return {
        Signal.NEXT_ITEM: config.next_item_weight,
        Signal.CO_BOUGHT: config.co_bought_weight,
        Signal.CO_VIEWED: config.co_viewed_weight,
        Signal.CONTENT: config.content_weight,
        Signal.PROFILE: config.profile_weight,
        Signal.LIKED_TOGETHER: config.liked_together_weight,
        Signal.SIMILAR_SESSIONS: config.similar_sessions_weight,
        Signal.REVISIT: config.revisit_weight,
        Signal.TRENDING: config.trending_weight,
        Signal.POPULAR: config.popularity_weight,
    }


class _Evidence(Generic[Entry]):
    """The candidates of one request in order of first mention (`candidates`, shared by both
    kinds below), and the contributions the signals make to them.

    A contribution is (signal weight x `unit` x strength). A request needs each candidate's
    summed score and its largest single contribution (for the reason): `_Scores`. A rehearsal
    of the learned blend needs only the unweighted part (`unit` x strength) summed per signal:
    `_Features`. Keeping them apart spares each the other's bookkeeping in the loop every
    contribution goes through (the hottest of ranking and of rehearsals).
    """

    __slots__ = ("candidates", "weights")

    def __init__(self, weights: dict[Signal, float]) -> None:
        self.weights = weights
        self.candidates: dict[str, Entry] = {}

    @property
    def rehearsal(self) -> bool:
        return False

    def add(
        self,
        found: Iterable[tuple[str, float]],
        unit: float,
        signal: Signal,
        anchor: str | None,
        skip: str | None = None,
    ) -> None:
        """Contributions of `signal` to the `found` items, except `skip`."""
        raise NotImplementedError

    def add_prior(self, counts: Mapping[str, float], unit: float, signal: Signal) -> None:
        """A prior's contribution to every candidate so far: min(1, count x `unit`)."""
        raise NotImplementedError

    def candidate(self, item: str) -> None:
        raise NotImplementedError


class _Scores(_Evidence[list[Any]]):
    """`candidates` maps each candidate to [summed score, its best contribution x the reason
    priority, that contribution's signal, its anchor]: one dict look-up per contribution."""

    __slots__ = ()

    def add(
        self,
        found: Iterable[tuple[str, float]],
        unit: float,
        signal: Signal,
        anchor: str | None,
        skip: str | None = None,
    ) -> None:
        candidates = self.candidates
        priority = REASON_PRIORITY[signal]
        scale = self.weights[signal] * unit
        for item, strength in found:
            if item == skip:
                continue
            value = scale * strength
            entry = candidates.get(item)
            if entry is None:
                candidates[item] = [value, value * priority, signal, anchor]
            else:
                entry[0] += value
                if value * priority > entry[1]:
                    entry[1:] = value * priority, signal, anchor

    def add_prior(self, counts: Mapping[str, float], unit: float, signal: Signal) -> None:
        priority = REASON_PRIORITY[signal]
        scale = self.weights[signal]
        for item, entry in self.candidates.items():
            # min(1, count x unit), without a call per candidate (a request has thousands).
            strength = counts.get(item, 0.0) * unit
            if strength > 1.0:  # noqa: PLR1730 (a call to min costs more here)
                strength = 1.0
            value = scale * strength
            entry[0] += value
            if value * priority > entry[1]:
                entry[1:] = value * priority, signal, None

    def candidate(self, item: str) -> None:
        if item not in self.candidates:
            self.candidates[item] = [0.0, 0.0, Signal.POPULAR, None]


class _Features(_Evidence[None]):
    """Per signal, the unweighted contributions summed per candidate (a rehearsal's rows)."""

    __slots__ = ("columns",)

    def __init__(self, weights: dict[Signal, float]) -> None:
        super().__init__(weights)
        self.columns: dict[Signal, dict[str, float]] = {signal: {} for signal in SIGNALS}

    @property
    def rehearsal(self) -> bool:
        return True

    def add(
        self,
        found: Iterable[tuple[str, float]],
        unit: float,
        signal: Signal,
        anchor: str | None,
        skip: str | None = None,
    ) -> None:
        candidates = self.candidates
        column = self.columns[signal]
        for item, strength in found:
            if item == skip:
                continue
            candidates[item] = None
            column[item] = column.get(item, 0.0) + unit * strength

    def add_prior(self, counts: Mapping[str, float], unit: float, signal: Signal) -> None:
        # Only the priors add to their own columns, and each adds once per candidate.
        self.columns[signal] = {
            item: min(1.0, counts.get(item, 0.0) * unit) for item in self.candidates
        }

    def candidate(self, item: str) -> None:
        self.candidates[item] = None


def anchors_of(
    user: UserState | None, config: RankingConfig, context_product_id: str | None
) -> list[Anchor]:
    """The shopper's most recent distinct items, newest first, weighted by kind and recency;
    the product page being viewed comes first."""
    weights: dict[str, float] = {}
    if context_product_id is not None:
        weights[context_product_id] = config.context_weight
    if user is not None:
        wanted = config.anchors + (context_product_id is not None)
        position = 0
        for visit in reversed(user.history):
            if len(weights) >= wanted:
                break
            if visit.product_id in weights or visit.weight <= 0:
                position += visit.product_id == context_product_id
                continue
            session = 1.0 if visit.session == user.session else config.earlier_session_weight
            weights[visit.product_id] = visit.weight * config.anchor_decay**position * session
            position += 1
    return [Anchor(item, weight) for item, weight in weights.items() if weight > 0]


class Ranker:
    def __init__(self, state: RecommenderState, config: RankingConfig) -> None:
        self.state = state
        self.config = config
        self._configured = configured_weights(config)

    def recommend(
        self,
        tenant_id: str,
        user_id: str,
        count: int,
        *,
        context_product_id: str | None = None,
        exclude: Collection[str] = (),
    ) -> Ranking:
        """Top `count` items for a shopper of a tenant, never an item of another tenant."""
        user = self.state.user(tenant_id, user_id)
        cold_start = user is None or not user.history
        if not self.state.has_tenant(tenant_id):
            return Ranking([], cold_start)
        tenant = self.state.tenant(tenant_id)
        blocked = self._blocked(user, context_product_id, exclude)
        evidence = _Scores(self._weights(tenant))
        self._evidence(evidence, tenant, user, context_product_id, blocked)
        discount = _repeat_discounts(tenant, user)
        candidates = evidence.candidates
        scored = [
            (item, entry[0] * discount.get(item, 1.0))
            for item, entry in candidates.items()
            if item not in blocked and tenant.recommendable(item)
        ]
        if user is not None:
            scored = self._second_stage(tenant, user, context_product_id, scored, count)
        chosen = _diversified(scored, tenant, count, self.config.category_penalty)
        return Ranking(
            [
                Recommendation(
                    item,
                    round(score, 6),
                    _reason(tenant, item, *candidates[item][2:]),
                    candidates[item][2],
                )
                for item, score in chosen
            ],
            cold_start,
        )

    def record(self, interaction: Interaction) -> bool:
        """Apply one interaction to the state (False for a redelivered one), after the tenant's
        blend has learned from it when it is due for a rehearsal."""
        if self.config.learning.enabled:
            self._rehearse(interaction)
        return self.state.record(interaction)

    def blend(self, tenant: TenantState) -> BlendWeights:
        """The tenant's blend weights, created from the settings on first use."""
        if tenant.blend is None:
            configured = self._configured
            tenant.blend = BlendWeights(SIGNALS, [configured[signal] for signal in SIGNALS])
        return tenant.blend

    def context(self, tenant: TenantState) -> ContextWeights:
        """The tenant's second-stage weights, created (all 0) on first use."""
        if tenant.context is None:
            tenant.context = ContextWeights(CONTEXT_FEATURES)
        return tenant.context

    def _second_stage(
        self,
        tenant: TenantState,
        user: UserState,
        context_product_id: str | None,
        scored: list[tuple[str, float]],
        count: int,
    ) -> list[tuple[str, float]]:
        """The blend's head re-scored by `rerank`: exp(its second-stage logit), so the best
        is 1 (the tail is dropped: it ranks after the head either way)."""
        config = self.config.context
        weights = tenant.context
        if not config.enabled or weights is None or not weights.learned:
            return scored
        head = [
            pair
            for pair in heapq.nlargest(max(config.head, count), scored, key=itemgetter(1))
            if pair[1] > 0
        ]
        if not head:
            return head
        items = [item for item, _ in head]
        page = context_product_id if context_product_id is not None else _newest(user)
        features = context_features(tenant, user, page, items, user.last_at)
        logits = weights.logits(np.array([score for _, score in head]), features)
        return list(zip(items, np.exp(logits - logits.max()).tolist(), strict=True))

    def _rehearsal(
        self, tenant: TenantState, user: UserState, context_product_id: str | None
    ) -> tuple[list[str], Matrix]:
        """Every candidate of a request by `user` now, with its evidence per signal (rows:
        candidates; columns: `SIGNALS`, unweighted, after the repeat discount)."""
        blocked = self._blocked(user, context_product_id, ())
        evidence = _Features(self._weights(tenant))
        self._evidence(evidence, tenant, user, context_product_id, blocked)
        discount = _repeat_discounts(tenant, user)
        items = [
            item
            for item in evidence.candidates
            if item not in blocked and tenant.recommendable(item)
        ]
        row_of = {item: row for row, item in enumerate(items)}
        features = np.zeros((len(items), len(SIGNALS)), dtype=np.float64)
        for column, signal in enumerate(SIGNALS):
            for item, value in evidence.columns[signal].items():
                row = row_of.get(item)
                if row is not None:
                    features[row, column] = value
        if discount:
            factors = np.array([discount.get(item, 1.0) for item in items], dtype=np.float64)
            features *= factors[:, None]
        return items, features

    def _rehearse(self, interaction: Interaction) -> None:
        """Learn the tenant's blend from a shopper who goes to `interaction.product_id` next:
        the request they could have made just before, from the product page they were on."""
        product = interaction.product_id
        if product is None or interaction.kind not in ITEM_KINDS:
            return
        if self.state.interaction_weight(interaction.kind, interaction.rating) <= 0:
            return  # a search, or a rating too low to count as a choice
        user = self.state.user(interaction.tenant_id, interaction.user_id)
        if user is None or not user.history or not self.state.has_tenant(interaction.tenant_id):
            return
        if self.state.already_applied(interaction):
            return  # redelivered: it was learned from the first time
        tenant = self.state.tenant(interaction.tenant_id)
        blend = self.blend(tenant)
        learning = self.config.learning
        if not blend.due(learning):
            return
        page = user.history[-1].product_id
        items, features = self._rehearsal(tenant, user, page)
        scores = features @ blend.values
        blend.learn(features, product, items, learning)
        if self.config.context.enabled:
            self._rehearse_second_stage(
                tenant, user, page, items=items, scores=scores, answer=product
            )

    def _rehearse_second_stage(
        self,
        tenant: TenantState,
        user: UserState,
        page: str,
        *,
        items: list[str],
        scores: Matrix,
        answer: str,
    ) -> None:
        """Let the second stage learn from the same rehearsal, among the blend's head."""
        config = self.config.context
        positive = np.flatnonzero(scores > 0)
        positive = positive[head_rows(scores[positive], config.head)]
        head = [items[row] for row in positive.tolist()]
        if answer not in head:
            return
        features = context_features(tenant, user, page, head, user.last_at)
        self.context(tenant).learn(
            scores[positive], features, head.index(answer), config.learning_rate
        )

    def _weights(self, tenant: TenantState) -> dict[Signal, float]:
        """The tenant's learned weights (positive exactly where the configured ones are:
        learning multiplies them), or the configured ones when learning is off."""
        if not self.config.learning.enabled:
            return self._configured
        return dict(zip(SIGNALS, self.blend(tenant).values.tolist(), strict=True))

    def _evidence(
        self,
        evidence: _Evidence[Any],
        tenant: TenantState,
        user: UserState | None,
        context_product_id: str | None,
        blocked: set[str],
    ) -> None:
        """Every signal's contributions to the candidates of one request, into `evidence`."""
        config = self.config
        weights = evidence.weights
        anchors = anchors_of(user, config, context_product_id)
        for graph, signal in (
            (tenant.next_item, Signal.NEXT_ITEM),
            (tenant.co_bought, Signal.CO_BOUGHT),
            (tenant.co_viewed, Signal.CO_VIEWED),
            (tenant.co_profile, Signal.LIKED_TOGETHER),
        ):
            if weights[signal] > 0:
                self._add_neighbours(evidence, graph, anchors, signal)
        if user is not None and weights[Signal.SIMILAR_SESSIONS] > 0:
            self._add_similar_sessions(evidence, tenant, user, context_product_id)
        if user is not None and weights[Signal.PROFILE] > 0 and len(user.profile):
            self._add_profile(evidence, tenant, user)
        if weights[Signal.CONTENT] > 0 and len(tenant.vectors):
            self._add_content(evidence, tenant, anchors)
        if user is not None and weights[Signal.REVISIT] > 0:
            self._add_revisits(evidence, user, blocked)
        self._add_priors(evidence, tenant)

    def _add_neighbours(
        self,
        evidence: _Evidence[Any],
        graph: NeighbourGraph,
        anchors: list[Anchor],
        signal: Signal,
    ) -> None:
        config = self.config
        for position, anchor in enumerate(anchors):
            scale = anchor.weight
            neighbours = graph.neighbours(anchor.product_id, config.candidates_per_anchor)
            evidence.add(neighbours, scale, signal, anchor.product_id)
            if position >= TWO_HOP_ANCHORS or config.two_hop_weight <= 0:
                continue
            # Neighbours of neighbours: a rarely seen item still reaches the items its few
            # neighbours lead to (a second step of a random walk on the item graph).
            for via, first in neighbours[:TWO_HOP_FIRST]:
                evidence.add(
                    graph.neighbours(via, TWO_HOP_SECOND),
                    config.two_hop_weight * scale * first,
                    signal,
                    anchor.product_id,
                    skip=anchor.product_id,
                )

    def _add_similar_sessions(
        self,
        evidence: _Evidence[Any],
        tenant: TenantState,
        user: UserState,
        context_product_id: str | None,
    ) -> None:
        """Session-kNN (`shopstream_recommender.sessions`) on the shopper's current session,
        the page being viewed as its newest item, weighted linearly by recency: older items
        still count in long sessions."""
        weighted: dict[str, float] = {}
        if context_product_id is not None:
            weighted[context_product_id] = 1.0
        for visit in user.session_items():
            if visit.product_id not in weighted and visit.weight > 0:
                weighted[visit.product_id] = max(
                    SESSION_RECENCY_FLOOR, 1.0 - SESSION_RECENCY_STEP * len(weighted)
                )
        if not weighted:
            return
        config = self.config
        found = tenant.sessions.similar(
            (user.user_id, user.session),
            list(weighted.items()),
            neighbours=config.session_neighbours,
            limit=config.candidates_per_anchor,
            spread=config.session_spread,
            now=user.last_at,
            half_life_seconds=self.state.limits.session_half_life_hours * 3_600.0,
        )
        # The newest item anchors the reason, so it never gets one itself ("next in sessions
        # like yours with <itself>"): re-showing it is the revisit signal's call.
        newest = next(iter(weighted))
        evidence.add(found, 1.0, Signal.SIMILAR_SESSIONS, newest, skip=newest)

    def _add_profile(self, evidence: _Evidence[Any], tenant: TenantState, user: UserState) -> None:
        """Item-kNN over the shopper's whole profile: each profile item's long-term neighbours,
        weighted by the item's recency-decayed weight, the sum scaled into [0, 1] and given a
        share of the blend that grows with the length of the profile."""
        config = self.config
        top = user.profile.top(config.profile_anchors)
        total = sum(weight for _, weight in top)
        if total <= 0:
            return
        # Only the history beyond this session is news to the session signals: a shopper seen
        # in one session only gets none of this signal, a returning one gets most of it.
        size = len(user.profile) - sum(
            1
            for item in {visit.product_id for visit in user.session_items()}
            if item in user.profile
        )
        if size <= 0:
            return
        share = size / (size + config.profile_ramp)
        unit = share / total
        for item, weight in top:
            neighbours = tenant.co_profile.neighbours(item, config.profile_neighbours)
            evidence.add(neighbours, unit * weight, Signal.PROFILE, item)

    def _add_content(
        self, evidence: _Evidence[Any], tenant: TenantState, anchors: list[Anchor]
    ) -> None:
        present, vectors = tenant.vectors.stack(anchor.product_id for anchor in anchors)
        if not present:
            return
        weight_of = {anchor.product_id: anchor.weight for anchor in anchors}
        weights = np.array([weight_of[item] for item in present], dtype=np.float32)
        profile: Vector = weights @ vectors
        norm = float(np.linalg.norm(profile))
        if norm == 0:
            return
        profile = profile / norm
        nearest, typical = tenant.vectors.nearest(profile, self.config.content_candidates)
        for item, _ in nearest:
            evidence.candidate(item)
        items, candidate_vectors = tenant.vectors.stack(list(evidence.candidates))
        if not items:
            return
        similarities = candidate_vectors @ profile
        top = max(float(similarities.max()), typical + 1e-6)
        # Encoders put most pairs of texts at a high cosine; only similarity above the
        # tenant's typical level is evidence, scaled so the closest item scores 1.
        strengths = np.clip((similarities - typical) / (top - typical), 0.0, 1.0)
        # The reason names the anchor each item is closest to.
        closest = np.argmax(candidate_vectors @ vectors.T, axis=1).tolist()
        scale = float(weights.max())
        fresh = 1.0 + self.config.fresh_item_boost
        interacted = tenant.popularity.counts
        for item, strength, anchor_row in zip(items, strengths.tolist(), closest, strict=True):
            if strength > 0:
                boost = 1.0 if item in interacted else fresh
                evidence.add(
                    ((item, strength * boost),), scale, Signal.CONTENT, present[anchor_row]
                )

    def _add_revisits(self, evidence: _Evidence[Any], user: UserState, blocked: set[str]) -> None:
        seen: set[str] = set()
        for position, visit in enumerate(user.session_items()):
            if visit.product_id in seen or visit.product_id in blocked:
                continue
            seen.add(visit.product_id)
            value = self.config.anchor_decay**position
            evidence.add(((visit.product_id, value),), 1.0, Signal.REVISIT, None)

    def _add_priors(self, evidence: _Evidence[Any], tenant: TenantState) -> None:
        config = self.config
        lazy = evidence.rehearsal  # see `DecayedCounts.top`
        for counts, signal in (
            (tenant.popularity, Signal.POPULAR),
            (tenant.trending, Signal.TRENDING),
        ):
            for item, _ in counts.top(lazy=lazy)[: config.prior_candidates]:
                evidence.candidate(item)
            unit = counts.scale(lazy=lazy)
            if evidence.weights[signal] <= 0 or unit <= 0:
                continue
            evidence.add_prior(counts.counts, unit, signal)

    def _blocked(
        self, user: UserState | None, context_product_id: str | None, exclude: Collection[str]
    ) -> set[str]:
        blocked = set(exclude)
        if context_product_id is not None:
            blocked.add(context_product_id)
        if user is not None:
            if self.config.exclude_purchased:
                blocked.update(user.purchased)
            if self.config.revisit_weight <= 0:
                blocked.update(visit.product_id for visit in user.session_items())
        return blocked


def _newest(user: UserState) -> str | None:
    return user.history[-1].product_id if user.history else None


def _repeat_discounts(tenant: TenantState, user: UserState | None) -> dict[str, float]:
    """Score factors for items the shopper already had, from how often the tenant's shoppers
    go back to such items (learned per tenant: high for click sessions, nil for ratings)."""
    if user is None:
        return {}
    keep_history = RepeatRates.keep(tenant.repeats.history)
    factors = dict.fromkeys(user.profile.weights, keep_history) if keep_history < 1 else {}
    keep_session = RepeatRates.keep(tenant.repeats.session)
    for visit in user.session_items():
        factors[visit.product_id] = keep_session
    return factors


def _reason(tenant: TenantState, item: str, signal: Signal, anchor: str | None) -> str:
    if anchor is not None and signal in ANCHORED_REASONS:
        return ANCHORED_REASONS[signal].format(anchor=tenant.display_name(anchor))
    if signal == Signal.REVISIT:
        return REVISIT_REASON
    known = tenant.catalogue.get(item)
    place = known.category if known is not None and known.category else "this shop"
    return PRIOR_REASONS.get(signal, PRIOR_REASONS[Signal.POPULAR]).format(place=place)


def _diversified(
    candidates: Iterable[tuple[str, float]], tenant: TenantState, count: int, penalty: float
) -> list[tuple[str, float]]:
    """Greedy top-`count` where each earlier pick of a category discounts the next by
    `penalty`; items without a category are never discounted."""
    heap = [(-score, item, 0) for item, score in candidates if score > 0]
    heapq.heapify(heap)
    chosen: list[tuple[str, float]] = []
    taken: dict[str, int] = {}
    while heap and len(chosen) < count:
        negative, item, counted = heapq.heappop(heap)
        known = tenant.catalogue.get(item)
        category = known.category if known is not None else None
        already = taken.get(category, 0) if category is not None else 0
        if already != counted:
            # Re-queue with the discount for the picks made since it was scored.
            heapq.heappush(heap, (negative * penalty ** (already - counted), item, already))
            continue
        chosen.append((item, -negative))
        if category is not None:
            taken[category] = already + 1
    return chosen
