"""Prometheus metrics of one service, on an explicit registry (never the global default)."""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

T = TypeVar("T")

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServiceMetrics:
    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        prefix = f"shopstream_{service}"
        self.prefix = prefix
        self.registry = registry
        self.events_total = Counter(
            f"{prefix}_events_total",
            "Events by outcome: consumed, published, dead_lettered, tombstone_skipped "
            "(null values on a compacted input).",
            ["status"],
            registry=registry,
        )
        self.batch_size = Histogram(
            f"{prefix}_batch_size",
            "Records per consumed batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.inference_seconds = Histogram(
            f"{prefix}_inference_seconds",
            "Wall time of one batched model call.",
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.e2e_lag_seconds = Histogram(
            f"{prefix}_e2e_lag_seconds",
            "From an input event's occurred_at to its result being acknowledged by the broker.",
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.model_load_seconds = Gauge(
            f"{prefix}_model_load_seconds",
            "Time the last model load took (conversion included on a cold cache).",
            registry=registry,
        )
        self.dead_letters_total = Counter(
            f"{prefix}_dead_letters_total",
            "Records sent to a dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.ready = Gauge(
            f"{prefix}_ready",
            "1 when the broker is connected and the model loaded.",
            registry=registry,
        )


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """`histogram.observe` for each amount, with one locked increment per bucket touched
    instead of two per amount: the e2e lag is observed for every event of every batch.

    prometheus_client has no bulk observe, so this adds to the histogram's own bucket and sum
    values; a unit test holds it equal to `observe` per amount.
    """
    if not amounts:
        return
    bounds = histogram._upper_bounds  # private, see above
    buckets = histogram._buckets
    # `observe` counts an amount in the first bucket whose upper bound is >= the amount.
    for index, count in Tally(bisect_left(bounds, amount) for amount in amounts).items():
        buckets[index].inc(count)
    histogram._sum.inc(sum(amounts))


class InferenceRunner:
    """Runs blocking model calls on one worker thread, so the event loop keeps heartbeating,
    and times each call."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    async def run(self, function: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            return await loop.run_in_executor(self._executor, function, *args)
        finally:
            self._metrics.inference_seconds.observe(time.perf_counter() - started)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
