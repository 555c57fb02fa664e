"""The second stage of ranking: the blend's head re-ordered by what the blend cannot see.

Every signal of the blend (`shopstream_recommender.ranking`) scales its evidence so that its
best candidate scores 1. That keeps the signals comparable, but it drops how much evidence
stands behind a score: an item that 40 shoppers went to next from the page being viewed and
one that a single shopper did can both score 1. The second stage gives each of the blend's
`head` best candidates features of that kind, in the context of the request:

* ``transitions``: log(1 + how many shoppers, time-decayed, went from the page on to it,
  within ``limits.pair_window`` steps, nearer steps counting more), and ``transition_share``:
  that count's share of every transition from the page;
* ``co_view_cosine``: the page and the item viewed in one session, over the geometric mean of
  their popularity;
* ``session_views``: log(1 + the shopper's views of it in this session), and
  ``session_recency``: 1 / (1 + minutes since they last viewed it; 0 if they did not).

It orders the head by log(blend score) + features @ weights. The weights start at 0 (the
blend's own order) and are learned per tenant from the blend's rehearsals
(`blend.ContextWeights`), so each shop finds what counts for its shoppers. On YOOCHOOSE it
lifts HR@10 from 0.534 to 0.537 and NDCG@10 from 0.332 to 0.337; MovieLens 100K does not move
(README, Quality). The item's popularity and trending counts helped YOOCHOOSE a little more
but cost MovieLens 4 % of HR@10 (learned during the warm-up, they misjudged its later
months), so they are not features.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shopstream_recommender.blend import Matrix
from shopstream_recommender.state import TenantState, UserState

CONTEXT_FEATURES = (
    "transitions",
    "transition_share",
    "co_view_cosine",
    "session_views",
    "session_recency",
)
SECONDS_PER_MINUTE = 60.0


def context_features(
    tenant: TenantState,
    user: UserState,
    page: str | None,
    items: Sequence[str],
    now: float,
) -> Matrix:
    """`CONTEXT_FEATURES` of `items` (rows) for a request by `user` on `page` at `now`."""
    empty: dict[str, float] = {}
    transitions = tenant.next_item.row(page) if page is not None else empty
    co_views = tenant.co_viewed.row(page) if page is not None else empty
    popularity = tenant.popularity.counts
    factor = tenant.popularity.factor_at(now)
    # Column by column, each a comprehension over the head: a loop per item building rows
    # cost twice as much (this runs on every request).
    transition = np.array([transitions.get(item, 0.0) for item in items], dtype=np.float64)
    together = np.array([co_views.get(item, 0.0) for item in items], dtype=np.float64)
    item_popularity = np.array([popularity.get(item, 0.0) for item in items], dtype=np.float64)
    page_popularity = popularity.get(page, 0.0) if page is not None else 0.0
    views: dict[str, int] = {}
    last_viewed: dict[str, float] = {}
    for visit in user.session_items():  # newest first
        views[visit.product_id] = views.get(visit.product_id, 0) + 1
        last_viewed.setdefault(visit.product_id, visit.at)
    features = np.zeros((len(items), len(CONTEXT_FEATURES)), dtype=np.float64)
    features[:, 0] = np.log1p(transition * tenant.next_item.factor_at(now))
    total = sum(transitions.values())
    if total > 0:
        features[:, 1] = transition / total
    # Popularity counts and co-views are stored forward-decayed: scaled to the same moment,
    # co-views over the geometric mean of the two counts is a cosine.
    geometric = np.sqrt(item_popularity * page_popularity) * factor
    np.divide(
        together * tenant.co_viewed.factor_at(now),
        geometric,
        out=features[:, 2],
        where=geometric > 0,
    )
    if views:
        features[:, 3] = np.log1p([views.get(item, 0) for item in items])
        features[:, 4] = [
            1.0 / (1.0 + max(0.0, now - seen) / SECONDS_PER_MINUTE)
            if (seen := last_viewed.get(item)) is not None
            else 0.0
            for item in items
        ]
    return features
