"""Session-kNN: the tenant's recent sessions as ordered sets of items, and for each item the
sessions that had it, so a request can find the past sessions most like the shopper's current
one and score what those shoppers went on to.

Item-to-item graphs see one pair of items at a time. A neighbour session is matched on the
whole current session, so "shoppers who viewed A *and* B" are told apart from those who viewed
A or B. Within a neighbour, items just after the last item it shares with the current session
count most (the sequence-aware weighting of STAN, Garg et al., SIGIR 2019): that is where its
shopper went next from where this one is now. Older sessions count less, by a half-life of
their own (``limits.session_half_life_hours``, 90 days: the item graphs' 14 days cost
MovieLens's long histories most of the gain).

Bounded per tenant: `max_sessions` sessions (the least recently active forgotten first), at
most `items_per_session` distinct items each, and `sessions_per_item` recent sessions per item.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict, deque
from collections.abc import Sequence
from operator import itemgetter

SessionKey = tuple[str, str]
"""(shopper, session label) within one tenant."""


class _Session:
    __slots__ = ("at", "items")

    def __init__(self, at: float) -> None:
        self.items: dict[str, None] = {}
        """Distinct items in the order first seen."""
        self.at = at
        """Time of the session's latest activity."""


class SessionIndex:
    __slots__ = (
        "_by_item",
        "_decays",
        "_items_per_session",
        "_max_sessions",
        "_per_item",
        "_sessions",
        "_spread",
        "entries",
    )

    def __init__(self, max_sessions: int, items_per_session: int, sessions_per_item: int) -> None:
        self._sessions: OrderedDict[SessionKey, _Session] = OrderedDict()
        self._by_item: dict[str, deque[SessionKey]] = {}
        self._max_sessions = max_sessions
        self._items_per_session = items_per_session
        self._per_item = sessions_per_item
        self._spread = 0.0
        self._decays: list[float] = []
        self.entries = 0
        """Session-item entries held (for the memory report)."""

    def add(self, key: SessionKey, item: str, at: float) -> None:
        """Note that session `key` had `item` at time `at` (the tenant's newest activity)."""
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = _Session(at)
            if len(self._sessions) > self._max_sessions:
                self._forget_oldest()
        else:
            self._sessions.move_to_end(key)
            session.at = max(session.at, at)
        items = session.items
        if item in items or len(items) >= self._items_per_session:
            return
        items[item] = None
        self.entries += 1
        sessions = self._by_item.get(item)
        if sessions is None:
            sessions = self._by_item[item] = deque(maxlen=self._per_item)
        sessions.append(key)

    def _forget_oldest(self) -> None:
        """Drop the least recently active session from every item's list too: a key left
        there would point at a later session of the same shopper and label, matching it on
        items it never had (and counting items it has twice)."""
        key, forgotten = self._sessions.popitem(last=False)
        self.entries -= len(forgotten.items)
        for item in forgotten.items:
            sessions = self._by_item.get(item)
            if sessions is not None and key in sessions:
                sessions.remove(key)
                if not sessions:
                    del self._by_item[item]

    def remove_item(self, item: str) -> None:
        """Forget a deleted product (the sessions keep their other items)."""
        for key in self._by_item.pop(item, ()):
            session = self._sessions.get(key)
            if session is not None and item in session.items:
                del session.items[item]
                self.entries -= 1

    def similar(
        self,
        current: SessionKey,
        weighted_items: Sequence[tuple[str, float]],
        *,
        neighbours: int,
        limit: int,
        spread: float,
        now: float,
        half_life_seconds: float,
    ) -> list[tuple[str, float]]:
        """The `limit` items best supported by the `neighbours` past sessions most like the
        current one (given as its items with their weights), scaled so the best is 1.

        A past session's similarity is the summed weight of the items it shares with the
        current one over sqrt(its size) (cosine, up to a factor common to all of them), halved
        for every `half_life_seconds` its latest activity lies before `now`. It supports each
        of its items with that similarity times exp(-steps / `spread`), where steps count from
        the item just after the last shared one (0), forwards or backwards.
        """
        sessions = self._sessions
        by_item = self._by_item
        overlap: dict[SessionKey, float] = {}
        get = overlap.get
        for item, weight in weighted_items:
            for key in by_item.get(item, ()):
                overlap[key] = get(key, 0.0) + weight
        overlap.pop(current, None)
        scored = [
            (
                shared
                / math.sqrt(len(held.items))
                * math.exp2(min(0.0, held.at - now) / half_life_seconds),
                key,
            )
            for key, shared in overlap.items()
            if (held := sessions.get(key)) is not None
        ]
        if not scored:
            return []
        wanted = {item for item, _ in weighted_items}
        decay = self._decay(spread)
        support: dict[str, float] = {}
        add = support.get
        # Ties keep the first found (the newest session of the newest item): nlargest is stable.
        for similarity, key in heapq.nlargest(neighbours, scored, key=itemgetter(0)):
            items = list(sessions[key].items)
            last_shared = len(items) - 1
            while items[last_shared] not in wanted:
                last_shared -= 1
            for steps, item in enumerate(reversed(items[: last_shared + 1]), start=1):
                support[item] = add(item, 0.0) + similarity * decay[steps]
            for steps, item in enumerate(items[last_shared + 1 :]):
                support[item] = add(item, 0.0) + similarity * decay[steps]
        best = heapq.nlargest(limit, support.items(), key=itemgetter(1))
        top = best[0][1]
        return [(item, value / top) for item, value in best]

    def _decay(self, spread: float) -> list[float]:
        """exp(-steps / spread) for every possible number of steps, computed once."""
        if self._spread != spread:
            self._spread = spread
            self._decays = [
                math.exp(-steps / spread) for steps in range(self._items_per_session + 1)
            ]
        return self._decays

    def __len__(self) -> int:
        return len(self._sessions)
