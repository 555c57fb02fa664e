"""Settings of the recommender (env prefix ``RECOMMENDER_``, nested fields joined by ``__``).

Examples: ``RECOMMENDER_RANKING__CONTENT_WEIGHT=0``, ``RECOMMENDER_LIMITS__MAX_USERS=200000``,
``RECOMMENDER_EMBEDDER__ENCODER=/models/bge-small``, ``RECOMMENDER_EMIT_AFTER='["purchase"]'``.

How a score is made (see ``shopstream_recommender.ranking``): the shopper's recent items are
*anchors*, each weighted by how it was used (``kind_weights``) and how recent it is
(``anchor_decay``, ``earlier_session_weight``; the product page being viewed weighs
``context_weight``). A candidate's score is the sum over anchors and signals of
``signal weight x anchor weight x edge strength``, where an edge's strength is its time-decayed
weight divided by the strongest edge of that anchor (so every signal lies in [0, 1] per anchor),
plus the popularity and trending priors, each scaled to [0, 1] by the tenant's top item,
plus the long-term profile signal (``profile_weight``: item-kNN over the shopper's whole
profile, recency-weighted, with a share that grows with the history beyond this session),
plus the long-term edges of the recent anchors (``liked_together_weight``: what shoppers who
had an anchor had at any time, not only in the same session).
Items the shopper already had are then discounted by the tenant's learned repeat rates
(``state.RepeatRates``): kept where shoppers go back to items (click sessions), dropped where
they never do (one rating per film).

The signal weights are where every tenant starts: each tenant then learns its own from what
its shoppers go to next (``ranking.learning``, ``shopstream_recommender.blend``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from shopstream.events import ActivityKind
from shopstream.models.names import DEFAULT_ENCODER
from shopstream.models.settings import ModelPlacementSettings
from shopstream.settings import ServiceSettings


class BlendLearning(BaseModel):
    """Learning the blend's weights per tenant from what its shoppers go to next
    (``shopstream_recommender.blend``); the configured weights are where each tenant starts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    """False keeps the configured weights for every tenant."""
    learning_rate: float = Field(default=0.05, gt=0, le=10)
    """Adagrad step size on the logarithm of each weight."""
    head: int = Field(default=30, ge=2, le=100_000)
    """Candidates, best-scored first, among which the shopper's next item is learned: the
    answers ranked beyond them teach nothing."""
    dense_rehearsals: int = Field(default=2_000, ge=0)
    """A tenant's first this many rehearsals come from every eligible interaction."""
    gap_share: float = Field(default=0.25, ge=0, le=10)
    """After that, the gap between rehearsed interactions is this share of the rehearsals so
    far (so their number grows like the square root of the events: about 3,500 for 1M) ..."""
    max_gap: int = Field(default=1_000, ge=1)
    """... and at most this many interactions, so the weights keep following the shop."""

    def next_gap(self, rehearsals: int) -> int:
        """Interactions until the next rehearsal, after `rehearsals` of them."""
        if rehearsals < self.dense_rehearsals:
            return 1
        return max(1, min(self.max_gap, int(rehearsals * self.gap_share)))


class ContextRanking(BaseModel):
    """The second stage: the blend's head re-ordered by features of each candidate in the
    context of the request, with weights learned per tenant (``shopstream_recommender.rerank``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    """False ranks by the blend alone."""
    head: int = Field(default=30, ge=2, le=10_000)
    """The blend's best candidates the second stage re-orders (and learns among). 30, 50 and
    100 scored alike on the validation split; the cost per request grows with it."""
    learning_rate: float = Field(default=0.5, gt=0, le=10)
    """Adagrad step size on each feature's weight. Larger than the blend's: the features'
    weights start at 0 and a shop's rehearsals are few (about 2,100 for YOOCHOOSE's 70,000
    warm-up clicks); on a validation split of those clicks 0.5 scored best of 0.05-2."""


class RankingConfig(BaseModel):
    """Weights and rules of the blend; every weight is relative, only ratios matter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    next_item_weight: float = Field(default=1.0, ge=0)
    """Sequential transitions: items shoppers went to *after* an anchor, within a session,
    weighted 1/distance (the strongest signal for the next click)."""
    co_viewed_weight: float = Field(default=1.0, ge=0)
    """Symmetric co-occurrence: items seen in the same sessions as an anchor, in any order."""
    co_bought_weight: float = Field(default=0.6, ge=0)
    """Items carted or bought in the same session or basket as an anchor ("bought with")."""
    two_hop_weight: float = Field(default=0.3, ge=0)
    """Neighbours of the neighbours of the two newest anchors, per item-to-item signal, at
    this fraction of a direct neighbour's weight: candidates for items seen too rarely to have
    many neighbours of their own."""
    content_weight: float = Field(default=0.3, ge=0)
    """Cosine similarity of the item's embedding (title, brand, category, attributes) to the
    shopper's profile; what lets a brand-new item with no interactions be recommended."""
    fresh_item_boost: float = Field(default=2.0, ge=0)
    """Content evidence of an item nobody has interacted with yet counts (1 + this) times:
    a new product has no co-occurrence to compete with, only its text."""
    popularity_weight: float = Field(default=0.1, ge=0)
    """Prior from time-decayed interaction counts in the tenant (half-life
    ``limits.popularity_half_life_hours``); the whole answer for a shopper with no history."""
    trending_weight: float = Field(default=0.1, ge=0)
    """Prior from the short half-life counts (``limits.trending_half_life_hours``)."""
    revisit_weight: float = Field(default=0.5, ge=0)
    """Score of items the shopper already viewed in the current session ("you viewed this
    recently"), decayed with their age in the session like anchors. Shoppers often return to
    an item they compared; 0 never re-shows them (when a separate "recently viewed" strip
    shows them)."""
    kind_weights: dict[ActivityKind, float] = Field(
        default_factory=lambda: {
            ActivityKind.VIEW: 1.0,
            ActivityKind.CART: 3.0,
            ActivityKind.PURCHASE: 4.0,
            ActivityKind.RATING: 2.0,
            ActivityKind.SEARCH: 0.0,
        }
    )
    """Weight of one interaction by kind, for anchors, edges and popularity. A rating scales
    its weight by (rating - 2.5) / 2.5, so a 1-star rating pushes nothing."""
    anchors: int = Field(default=8, ge=1, le=100)
    """Most recent distinct items of the shopper used as anchors."""
    anchor_decay: float = Field(default=0.6, gt=0, le=1)
    """Weight of each older anchor relative to the next newer one (1 = all equal)."""
    earlier_session_weight: float = Field(default=0.4, ge=0, le=1)
    """Extra factor for anchors from the shopper's earlier sessions."""
    context_weight: float = Field(default=1.5, ge=0)
    """Anchor weight of the product page being viewed (``context_product_id``)."""
    candidates_per_anchor: int = Field(default=50, ge=1, le=10_000)
    """Strongest neighbours taken from each anchor per signal."""
    prior_candidates: int = Field(default=30, ge=0, le=10_000)
    """Top popular and top trending items added as candidates: the cold-start pool, and the
    filler when a shopper's anchors have few neighbours."""
    content_candidates: int = Field(default=50, ge=0, le=10_000)
    """Nearest items to the shopper's profile added as candidates."""
    category_penalty: float = Field(default=0.7, gt=0, le=1)
    """Diversity: each item already chosen from a category multiplies the score of the next
    one from that category by this factor (1 = no diversity)."""
    exclude_purchased: bool = True
    """Never recommend what the shopper already bought."""
    profile_weight: float = Field(default=20.0, ge=0)
    """The long-term profile signal: items that shoppers with the same items anywhere in
    their history also had (``co_profile`` edges), aggregated over the shopper's whole profile
    with recency weights (``limits.profile_half_life_events``). Its share of the blend grows
    with the length of the shopper's profile (n / (n + ``profile_ramp``) of this weight), so
    a session-only shopper keeps the session signals and a returning one gets their history."""
    liked_together_weight: float = Field(default=0.7, ge=0)
    """The long-term edges (``co_profile``) of the shopper's recent anchors, walked two steps
    like the session graphs: what shoppers who had the current items also had at any time, not
    only in the same session. On MovieLens 100K it lifts HR@10 from 0.170 to 0.183; it costs
    YOOCHOOSE's sessions a little (0.531 to 0.527); README, Quality."""
    similar_sessions_weight: float = Field(default=4.0, ge=0)
    """Session-kNN: items of the past sessions most like the shopper's current one (matched
    on all of its items), those just after where a neighbour met this session counting most
    (``shopstream_recommender.sessions``). HR@10 on YOOCHOOSE 0.527 to 0.534, on MovieLens
    100K 0.183 to 0.193 (README, Quality). 0 switches it off from ranking; the session index
    is kept all the same, bounded by ``limits.sessions_per_tenant``."""
    session_neighbours: int = Field(default=50, ge=1, le=10_000)
    """Past sessions, most similar first, whose items session-kNN scores."""
    session_spread: float = Field(default=5.0, gt=0)
    """Within a neighbour session, an item's support falls by a factor e every this many
    steps away from the item after the last one it shares with the current session."""
    profile_anchors: int = Field(default=15, ge=1, le=1_000)
    """Strongest (most recent, most engaged) profile items expanded per request."""
    profile_neighbours: int = Field(default=50, ge=1, le=10_000)
    """Long-term neighbours taken per profile item: with ``profile_anchors`` it bounds the
    candidates the profile adds, which every signal then scores (ranking cost grows with it)."""
    profile_ramp: float = Field(default=10.0, gt=0)
    """Distinct profile items at which the profile signal reaches half its weight."""
    context: ContextRanking = ContextRanking()
    """The second stage, after the blend (it learns from the blend's rehearsals, so it needs
    ``learning.enabled``)."""
    learning: BlendLearning = BlendLearning()
    """The signal weights above are each tenant's starting point; they are then learned per
    tenant (``learning.enabled``). A weight set to 0 switches its signal off for good."""


class StateLimits(BaseModel):
    """Memory bounds and time scales of the in-memory state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_users: int = Field(default=500_000, ge=1)
    """Shoppers whose history is kept; the least recently active are forgotten first."""
    history_per_user: int = Field(default=50, ge=1, le=10_000)
    """Most recent interactions kept per shopper."""
    purchases_per_user: int = Field(default=200, ge=0, le=100_000)
    """Most recent purchases kept per shopper (for the already-purchased filter)."""
    neighbours_per_item: int = Field(default=100, ge=1, le=100_000)
    """Neighbours kept per item and signal; the weakest are dropped beyond this."""
    pair_window: int = Field(default=5, ge=1, le=100)
    """A new interaction is paired with this many of the shopper's previous items in the
    session (next-item distance and co-occurrence)."""
    session_gap_seconds: float = Field(default=1_800, gt=0)
    """Inactivity that ends a session when events carry no ``session_id``."""
    co_occurrence_half_life_hours: float = Field(default=24 * 14, gt=0)
    """Half-life of item-to-item evidence: a pair seen two weeks ago counts half."""
    popularity_half_life_hours: float = Field(default=24 * 7, gt=0)
    trending_half_life_hours: float = Field(default=6, gt=0)
    prior_refresh_events: int = Field(default=500, ge=1)
    """The cached top-popular and trending lists of a tenant are recomputed after this many
    interactions at most (fewer on a small catalogue: ``DecayedCounts.top``)."""
    prior_refresh_seconds: float = Field(default=5.0, gt=0)
    """Ignored: the lists refresh by counted interactions only, never by the clock, so a replay
    ranks exactly as the live run did. Kept so that configurations which set it still load."""
    profile_items: int = Field(default=200, ge=1, le=100_000)
    """Distinct items kept in a shopper's long-term profile; the weakest (oldest, least
    engaged) are dropped beyond this."""
    profile_half_life_events: float = Field(default=10.0, gt=0)
    """Recency of the profile, counted in the shopper's own interactions: an item's weight
    halves every this many later interactions of the shopper (so a shopper who comes back
    after a year still has a profile)."""
    profile_pair_window: int = Field(default=10, ge=0, le=1_000)
    """A new interaction is paired with this many of the shopper's most recent distinct items,
    across sessions, to learn the long-term item-to-item edges (``co_profile``)."""
    profile_edge_half_life_hours: float = Field(default=24 * 90, gt=0)
    """Half-life of the long-term item-to-item edges."""
    sessions_per_tenant: int = Field(default=100_000, ge=1)
    """Recent sessions kept per tenant for session-kNN (``ranking.similar_sessions_weight``);
    the least recently active are forgotten first."""
    session_half_life_hours: float = Field(default=24 * 90, gt=0)
    """Half-life of a past session's similarity in session-kNN, from its latest activity."""
    sessions_per_item: int = Field(default=30, ge=1, le=100_000)
    """Most recent sessions remembered per item: the neighbour sessions a request can find
    through one of its items."""


class EmbedderConfig(ModelPlacementSettings):
    """The item encoder behind content similarity (title, brand, category, attributes); its
    ``device`` from ``ModelPlacementSettings``, its CPU threads from ``OMP_NUM_THREADS``."""

    enabled: bool = True
    """False turns content similarity off and loads no model (ranking then rests on the
    interaction signals and priors only)."""
    encoder: str = DEFAULT_ENCODER
    """Registry name, local directory or Hugging Face id."""
    revision: str | None = None
    max_length: int = Field(default=128, ge=16, le=512)
    batch_size: int = Field(default=64, ge=1, le=4_096)
    """Items per encoder forward pass."""
    embed_batch: int = Field(default=256, ge=1, le=100_000)
    """Product upserts gathered before one embedding call; embedding never runs on the request
    path."""


class RecommenderSettings(ServiceSettings):
    """Settings of the recommender. Topics: ``topics.activity`` and ``topics.recs_requests``
    (in, co-partitioned, consumed in the group), ``topics.products`` (in, read in full by every
    replica), ``topics.recs_results`` (out)."""

    model_config = SettingsConfigDict(env_prefix="RECOMMENDER_")

    ranking: RankingConfig = RankingConfig()
    limits: StateLimits = StateLimits()
    embedder: EmbedderConfig = EmbedderConfig()
    emit_after: list[ActivityKind] = Field(default_factory=list)
    """Activity kinds after which fresh recommendations are published unasked (for example
    ``["cart", "purchase"]``); empty = only on request."""
    emit_count: int = Field(default=10, ge=1, le=100)
    """Items in the unasked recommendations of ``emit_after``."""
    replay_activity: bool = True
    """Rebuild the state on start by replaying the activity topic up to the group's committed
    offsets (then consume from there); off = start empty."""
