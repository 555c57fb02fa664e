"""Recommender benchmark: requests/s and latency through a real broker while activity flows.

The service runs as its own process (`python -m shopstream_recommender`, content similarity off:
the request path uses no model), exactly as deployed. For each catalogue size this script
publishes a synthetic shop's browsing (items in clusters of related products with Zipf
popularity, one session of 2-6 views per user) to the activity topic before the service starts
and times how fast the service drains it, then publishes `recommendations.requested` while
activity keeps flowing, and reads the answers back from the results topic. Reported: activity
drain (events/s), request drain (answers/s), latency at a steady request rate (request sent ->
answer read back), mean ranking time (the service's own histogram), state size and the
service's resident memory, and restart recovery (SIGTERM, then a new process replays the
activity topic up to the committed offsets).

    uv run python bench/recommender_bench.py [--items 10000 100000] [--users 100000]
        [--requests 3000] [--rate 200] [--activity-rate 500] [--json bench/results/recommender.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from shopstream.devbroker import LocalBrokerConfig
from shopstream.devbroker import broker as local_broker
from shopstream.events import ActivityRecorded, RecommendationsRequested
from shopstream.kafka_io import topic_partitions
from shopstream.runtime.admin import ensure_topics
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings

TENANT = "bench"
CLUSTER = 20
PARTITIONS = 6
POLL_SECONDS = 0.2
"""Between metric scrapes while timing the backlog: each scrape costs the service a little."""
console = Console()


def synthetic_sessions(items: int, users: int, seed: int = 1) -> list[tuple[str, str]]:
    """(user, item) views: one session of 2-6 views per user inside a cluster of related items."""
    rng = random.Random(seed)
    clusters = max(1, items // CLUSTER)
    weights = [1.0 / (rank + 1) for rank in range(clusters)]
    chosen = rng.choices(range(clusters), weights=weights, k=users)
    return [
        (f"u{user}", f"i{cluster * CLUSTER + rng.randrange(CLUSTER)}")
        for user, cluster in enumerate(chosen)
        for _ in range(rng.randint(2, 6))
    ]


def view(user: str, item: str) -> ActivityRecorded:
    return ActivityRecorded(
        tenant_id=TENANT, payload={"user_id": user, "kind": "view", "product_id": item}
    )


def make_request(users: int, items: int, rng: random.Random) -> RecommendationsRequested:
    known = rng.random() < 0.9
    user = f"u{rng.randrange(users)}" if known else f"new{rng.randrange(10**9)}"
    context = f"i{rng.randrange(items)}" if rng.random() < 0.5 else None
    return RecommendationsRequested(
        tenant_id=TENANT,
        payload={
            "user_id": user,
            "request_id": uuid.uuid4().hex,
            "count": 10,
            "context_product_id": context,
        },
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def poll_until(condition: Callable[[], bool], within: float) -> bool:
    """Wait for a condition nothing signals; False when `within` seconds pass first."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServiceProcess:
    """`python -m shopstream_recommender` configured through its environment."""

    def __init__(self, bootstrap: str, topics: TopicSettings, group: str) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "RECOMMENDER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "RECOMMENDER_TOPICS__PRODUCTS": topics.products,
            "RECOMMENDER_TOPICS__ACTIVITY": topics.activity,
            "RECOMMENDER_TOPICS__RECS_REQUESTS": topics.recs_requests,
            "RECOMMENDER_TOPICS__RECS_RESULTS": topics.recs_results,
            "RECOMMENDER_TOPICS__PARTITIONS": str(PARTITIONS),
            "RECOMMENDER_GROUP_ID": group,
            "RECOMMENDER_HTTP_PORT": str(self.port),
            "RECOMMENDER_EMBEDDER__ENABLED": "false",
            "RECOMMENDER_BATCH__MAX_RECORDS": "500",
            "RECOMMENDER_BATCH__BATCH_TIMEOUT_MS": "5",
            "RECOMMENDER_LOG_LEVEL": "WARNING",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shopstream_recommender"], env=self.env
        )

    def _get(self, path: str) -> str | None:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body: bytes = response.read()
                return body.decode()
        except (urllib.error.URLError, ConnectionError):
            return None

    async def ready(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await asyncio.to_thread(self._get, "/health/ready") is not None:
                return True
            await asyncio.sleep(0.1)
        return False

    async def metrics(self) -> dict[str, float]:
        text = await asyncio.to_thread(self._get, "/metrics") or ""
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def rss_mb(self) -> float:
        assert self.process is not None
        with Path(f"/proc/{self.process.pid}/status").open() as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """User and system CPU the service process has used, all its threads together."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=120)
            self.process = None


class AnswerReader:
    """Reads the results topic from its current end and notes when each request was answered."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._topic = topic
        self.answered: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        partitions = await topic_partitions(self._consumer, self._topic)
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for partition in partitions:
            await self._consumer.position(partition)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100, max_records=5_000)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    request_id = json.loads(record.value or b"{}")["payload"]["request_id"]
                    self.answered.setdefault(request_id, now)

    async def wait_for(self, wanted: set[str], within: float) -> None:
        await poll_until(lambda: wanted <= self.answered.keys(), within)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._consumer.stop()


async def send_all(
    producer: AIOKafkaProducer,
    topic: str,
    events: list[ActivityRecorded] | list[RecommendationsRequested],
    rate: float | None,
) -> dict[str, float]:
    """Publish in order (at `rate`/s, or as fast as possible); return each request's send time."""
    sent: dict[str, float] = {}
    started = time.perf_counter()
    for index, event in enumerate(events):
        if rate is not None:
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        if isinstance(event, RecommendationsRequested):
            sent[event.payload.request_id] = time.perf_counter()
        await producer.send(topic, event.to_json(), key=event.message_key().encode())
    await producer.flush()
    return sent


async def flow_activity(
    producer: AIOKafkaProducer, topic: str, users: int, items: int, rate: float
) -> None:
    """Shoppers keep browsing while requests are measured."""
    rng = random.Random(2)
    started = time.perf_counter()
    index = 0
    while True:
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        event = view(f"u{rng.randrange(users)}", f"i{rng.randrange(items)}")
        await producer.send(topic, event.to_json(), key=event.message_key().encode())
        index += 1


async def publish_backlog(producer: AIOKafkaProducer, topic: str, items: int, users: int) -> int:
    """Publish the shop's browsing before the service starts; return how many views."""
    warm = [view(user, item) for user, item in synthetic_sessions(items, users)]
    await send_all(producer, topic, warm, None)
    return len(warm)


async def drain_backlog(service: ServiceProcess, backlog: int) -> dict[str, float]:
    """Time how fast one replica works through the published browsing, as `bus_bench.py` times
    the bus: from the first poll that sees events consumed to the one that sees them all, so
    that neither the group's first join nor a load generator on the same cores is timed."""
    consumed = 'shopstream_recommender_events_total{status="consumed"}'
    deadline = time.monotonic() + 600
    first: tuple[float, float, float] | None = None
    while True:
        seen = (await service.metrics()).get(consumed, 0.0)
        now, cpu = time.perf_counter(), service.cpu_seconds()
        if first is None and seen > 0:
            first = (now, seen, cpu)
        if seen >= backlog and first is not None and now > first[0]:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the published activity was not consumed within 600 s")
        await asyncio.sleep(POLL_SECONDS)
    began, already, cpu_before = first
    return {
        "warm_events": backlog,
        "ingest_events_per_second": (backlog - already) / (now - began),
        # Steadier than the rate where other processes share the cores.
        "ingest_cpu_us_per_event": (cpu - cpu_before) / (backlog - already) * 1e6,
    }


async def answer_requests(
    producer: AIOKafkaProducer,
    reader: AnswerReader,
    topics: TopicSettings,
    *,
    items: int,
    users: int,
    args: argparse.Namespace,
) -> dict[str, float]:
    """Backlog drain, then a steady request rate, both while activity keeps flowing."""
    rng = random.Random(3)
    # Until the group has assigned its partitions nothing is answered; do not time that.
    first = [make_request(users, items, rng) for _ in range(20)]
    await send_all(producer, topics.recs_requests, first, None)
    await reader.wait_for({r.payload.request_id for r in first}, 60)
    activity = asyncio.create_task(
        flow_activity(producer, topics.activity, users, items, args.activity_rate)
    )
    try:
        backlog = [make_request(users, items, rng) for _ in range(args.requests)]
        began = time.perf_counter()
        await send_all(producer, topics.recs_requests, backlog, None)
        await reader.wait_for({r.payload.request_id for r in backlog}, 180)
        drained = sum(r.payload.request_id in reader.answered for r in backlog)
        drain_seconds = time.perf_counter() - began
        steady = [make_request(users, items, rng) for _ in range(args.requests)]
        sent = await send_all(producer, topics.recs_requests, steady, args.rate)
        await reader.wait_for(set(sent), 60)
    finally:
        activity.cancel()
    latencies = [
        (reader.answered[rid] - at) * 1_000 for rid, at in sent.items() if rid in reader.answered
    ]
    return {
        "drain_requests_per_second": drained / drain_seconds,
        "steady_answered": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 0.99),
    }


async def service_figures(service: ServiceProcess) -> dict[str, float]:
    metrics = await service.metrics()
    ranking_sum = metrics["shopstream_recommender_ranking_seconds_sum"]
    ranking_count = metrics["shopstream_recommender_ranking_seconds_count"]
    state = 'shopstream_recommender_state{part="%s"}'
    return {
        "ranking_mean_ms": ranking_sum / ranking_count * 1_000,
        "state_users": metrics[state % "users"],
        "state_edges": metrics[state % "neighbour_edges"],
        "state_estimated_mb": metrics[state % "estimated_bytes"] / 2**20,
        "service_rss_mb": service.rss_mb(),
    }


async def restart(service: ServiceProcess) -> dict[str, float]:
    """SIGTERM (drain and commit), then a new process replays the activity topic."""
    await asyncio.to_thread(service.stop)
    service.start()
    began = time.perf_counter()
    if not await service.ready(300):
        raise RuntimeError("the restarted service did not become ready")
    ready = time.perf_counter() - began
    metrics = await service.metrics()
    return {
        "restart_to_ready_seconds": ready,
        "replayed_events": metrics["shopstream_recommender_replayed_events"],
        "replay_seconds": metrics["shopstream_recommender_replay_seconds"],
    }


async def measure(
    bootstrap: str, items: int, users: int, args: argparse.Namespace
) -> dict[str, Any]:
    prefix = f"bench.recs.{uuid.uuid4().hex[:6]}"
    topics = TopicSettings(
        products=f"{prefix}.products",
        activity=f"{prefix}.activity",
        recs_requests=f"{prefix}.requests",
        recs_results=f"{prefix}.results",
        partitions=PARTITIONS,
    )
    service = ServiceProcess(bootstrap, topics, f"{prefix}.group")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    reader = AnswerReader(bootstrap, topics.recs_results)
    result: dict[str, Any] = {"items": items, "users": users}
    await ensure_topics(KafkaSettings(bootstrap_servers=bootstrap), topics.specs())
    try:
        await producer.start()
        await reader.start()
        backlog = await publish_backlog(producer, topics.activity, items, users)
        service.start()
        if not await service.ready(120):
            raise RuntimeError("the service did not become ready")
        result |= await drain_backlog(service, backlog)
        result |= await answer_requests(
            producer, reader, topics, items=items, users=users, args=args
        )
        result |= await service_figures(service)
        await producer.flush()
        result |= await restart(service)
    finally:
        await reader.stop()
        await producer.stop()
        await asyncio.to_thread(service.stop)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--rate", type=float, default=200, help="steady requests/s")
    parser.add_argument("--activity-rate", type=float, default=500, help="activity events/s")
    parser.add_argument("--json", type=Path, default=Path("bench/results/recommender.json"))
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    config = LocalBrokerConfig(port=19692, controller_port=19693)
    if bootstrap is None:
        local_broker.ensure_jars(config)
        bootstrap = local_broker.start(config).bootstrap_servers
    try:
        runs = [await measure(bootstrap, items, args.users, args) for items in args.items]
    finally:
        if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            local_broker.stop(config)
    table = Table(title=f"recommender, {args.users:,} users, {PARTITIONS} partitions, one replica")
    table.add_column("metric")
    for run in runs:
        table.add_column(f"{run['items']:,} items", justify="right")
    rows = [
        ("activity backlog drained via Kafka (events/s)", "ingest_events_per_second", "{:,.0f}"),
        ("service CPU per activity event (µs)", "ingest_cpu_us_per_event", "{:.1f}"),
        ("requests/s (backlog drain)", "drain_requests_per_second", "{:,.0f}"),
        (f"p50 latency @ {args.rate:,.0f} req/s (ms)", "p50_ms", "{:.1f}"),
        (f"p99 latency @ {args.rate:,.0f} req/s (ms)", "p99_ms", "{:.1f}"),
        ("ranking, mean per request (ms)", "ranking_mean_ms", "{:.2f}"),
        ("state estimate (MB)", "state_estimated_mb", "{:,.0f}"),
        ("service resident memory (MB)", "service_rss_mb", "{:,.0f}"),
        ("restart: events replayed", "replayed_events", "{:,.0f}"),
        ("restart: replay (s)", "replay_seconds", "{:.1f}"),
        ("restart: new process to ready (s)", "restart_to_ready_seconds", "{:.1f}"),
    ]
    for title, key, form in rows:
        table.add_row(title, *(form.format(run[key]) for run in runs))
    console.print(table)
    warm = ", ".join(f"{run['warm_events']:,}" for run in runs)
    console.print(
        f"activity flowing at {args.activity_rate:,.0f} events/s while requests are measured; "
        f"warm-up views: {warm}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    summary = {"args": vars(args) | {"json": str(args.json)}, "runs": runs}
    args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
