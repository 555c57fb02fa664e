"""Recommender cost at scale with long user histories, in process (no broker, no model).

A synthetic shop: `--items` products in clusters of related items with Zipf popularity, and
`--interactions` views spread over `--users` returning shoppers. Each shopper has one to three
favourite clusters and comes back in sessions of about ten views over a year, so histories are
long (the default: 1M views over 20k shoppers, 50 each). The same stream is replayed into three
states, one per column, in the same run:

- **profile off**: `profile_weight` 0 and `profile_pair_window` 0, the session signals only
  (the release before the long-term profile);
- **blend fixed**: the shipped settings, with the profile signal, but the configured blend
  weights kept (the release before the learned blend);
- **default**: the shipped settings, whose blend learns from rehearsed requests during ingestion.

Reported per column: activity ingestion (events/s through `Ranker.record`, rehearsals
included), ranking time per request (`Ranker.recommend` for shoppers picked at random among
those with a history, the product page of their last view as context), the state's own size
estimate (`MemoryReport`), and the growth of the process's resident memory during ingestion,
each also per 1M interactions.

    uv run python bench/recommender_scale.py [--items 100000] [--users 20000]
        [--interactions 1000000] [--requests 2000] [--json bench/results/recommender_scale.json]
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import multiprocessing
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from shopstream.events import ActivityKind
from shopstream_recommender.config import BlendLearning, RankingConfig, StateLimits
from shopstream_recommender.ranking import Ranker
from shopstream_recommender.state import Interaction, RecommenderState

TENANT = "bench"
CLUSTER = 20
SESSION_VIEWS = 10
YEAR_SECONDS = 365 * 24 * 3_600
console = Console()


def long_histories(items: int, users: int, interactions: int, seed: int = 7) -> list[Interaction]:
    """Views in time order: each shopper browses their favourite clusters, session by session."""
    rng = random.Random(seed)
    clusters = max(1, items // CLUSTER)
    cluster_weights = [1.0 / (rank + 1) for rank in range(clusters)]
    in_cluster = [1.0 / (rank + 1) for rank in range(CLUSTER)]
    favourites = [
        rng.choices(range(clusters), weights=cluster_weights, k=rng.randint(1, 3))
        for _ in range(users)
    ]
    shoppers = rng.choices(range(users), k=interactions)
    start = time.time() - YEAR_SECONDS
    seen: dict[int, int] = {}
    stream = []
    for position, user in enumerate(shoppers):
        count = seen.get(user, 0)
        seen[user] = count + 1
        cluster = rng.choice(favourites[user])
        item = cluster * CLUSTER + rng.choices(range(CLUSTER), weights=in_cluster)[0]
        stream.append(
            Interaction(
                tenant_id=TENANT,
                user_id=f"u{user}",
                kind=ActivityKind.VIEW,
                at=start + YEAR_SECONDS * position / interactions,
                product_id=f"i{item}",
                session_id=f"u{user}-s{count // SESSION_VIEWS}",
                event_id=f"e{position}",
            )
        )
    return stream


def rss_mb() -> float:
    pages = int(Path(f"/proc/{os.getpid()}/statm").read_text(encoding="ascii").split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


_STREAM: list[Interaction] = []
"""The replayed stream, built once before the columns fork (inherited, never pickled)."""


def in_fresh_process(config: RankingConfig, limits: StateLimits, requests: int) -> dict[str, float]:
    """`measure` in a forked child, so each column's resident memory starts from the same
    point rather than from what the previous column's freed state left to the allocator."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply(functools.partial(measure, config=config, limits=limits), (requests,))


def measure(requests: int, *, config: RankingConfig, limits: StateLimits) -> dict[str, float]:
    stream = _STREAM
    gc.collect()
    rss_before = rss_mb()
    state = RecommenderState(limits, config.kind_weights)
    ranker = Ranker(state, config)
    started = time.perf_counter()
    for interaction in stream:
        ranker.record(interaction)
    ingest_seconds = time.perf_counter() - started
    gc.collect()
    rss_growth = rss_mb() - rss_before
    rng = random.Random(11)
    shoppers = [key for key, user in state.users() if user.history]
    timings = []
    for _ in range(requests):
        tenant, user_id = rng.choice(shoppers)
        user = state.user(tenant, user_id)
        context = user.history[-1].product_id if user is not None else None
        began = time.perf_counter()
        ranker.recommend(tenant, user_id, 10, context_product_id=context)
        timings.append((time.perf_counter() - began) * 1_000)
    timings.sort()
    memory = state.memory()
    per_million = 1_000_000 / len(stream)
    return {
        "ingest_events_per_second": len(stream) / ingest_seconds,
        "rank_mean_ms": statistics.fmean(timings),
        "rank_p50_ms": timings[len(timings) // 2],
        "rank_p99_ms": timings[int(len(timings) * 0.99) - 1],
        "state_estimate_mb": memory.estimated_bytes / 2**20,
        "state_estimate_mb_per_1m": memory.estimated_bytes / 2**20 * per_million,
        "rss_growth_mb": rss_growth,
        "rss_growth_mb_per_1m": rss_growth * per_million,
        "neighbour_edges": memory.neighbour_edges,
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--json", type=Path, default=Path("bench/results/recommender_scale.json"))
    args = parser.parse_args()
    _STREAM[:] = long_histories(args.items, args.users, args.interactions)
    # A user cap above the shoppers in play, so nobody is forgotten mid-run.
    limits = StateLimits(max_users=max(StateLimits().max_users, args.users))
    default = RankingConfig()
    columns = {
        "profile off": in_fresh_process(
            default.model_copy(update={"profile_weight": 0.0}),
            limits.model_copy(update={"profile_pair_window": 0}),
            args.requests,
        ),
        "blend fixed": in_fresh_process(
            default.model_copy(update={"learning": BlendLearning(enabled=False)}),
            limits,
            args.requests,
        ),
        "default (blend learned)": in_fresh_process(default, limits, args.requests),
    }
    table = Table(
        title=f"recommender at scale: {args.items:,} items, {args.users:,} shoppers, "
        f"{args.interactions:,} views, {args.requests:,} requests, in process"
    )
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    rows: list[tuple[str, str, str]] = [
        ("activity ingestion (events/s)", "ingest_events_per_second", "{:,.0f}"),
        ("ranking, mean (ms)", "rank_mean_ms", "{:.2f}"),
        ("ranking, p50 / p99 (ms)", "", ""),
        ("state estimate (MB per 1M interactions)", "state_estimate_mb_per_1m", "{:,.0f}"),
        ("RSS growth (MB per 1M interactions)", "rss_growth_mb_per_1m", "{:,.0f}"),
        ("neighbour edges", "neighbour_edges", "{:,.0f}"),
        ("load average (1 min)", "load_average", "{:.1f}"),
    ]
    for title, key, pattern in rows:
        if not key:
            cells = [f"{c['rank_p50_ms']:.2f} / {c['rank_p99_ms']:.2f}" for c in columns.values()]
        else:
            cells = [pattern.format(c[key]) for c in columns.values()]
        table.add_row(title, *cells)
    console.print(table)
    report: dict[str, Any] = {"settings": vars(args) | {"json": str(args.json)}, **columns}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
