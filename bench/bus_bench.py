"""Bus benchmark: the shopstream runtime with a no-op model, on both Kafka clients, vs raw loops
and a Quix Streams app.

Every column consumes the same pre-produced events from a real broker and publishes one result
per event, committing offsets after the results are acknowledged (or, exactly once, with them).
The raw loops do nothing else: they show what each client costs on its own. The Quix Streams
peer (`bench/quix_peer.py`, run by uv in an environment of its own, so the product does not
depend on it) does the echo service's work as a Quix app, with Quix's own checkpointing.
Throughput drains a backlog; latency is measured at a steady offered load (occurred_at at
send -> result read back). The exactly-once column's results are read back with
`read_committed`, as its consumers must.

Each column runs in a process of its own (this script with `--peer COLUMN`, or the Quix app),
as a service would in its pod; this process only produces the events and reads the results
back. The time from process start to `ready` is left out of the drain, and CPU per event is the
column's process alone, librdkafka's threads included.

The columns run in interleaved rounds (raw, at-least-once, exactly-once, raw, ...) and each
figure is the median over the rounds, so a burst of load from other jobs on a shared machine
skews one round of every column rather than one whole column.

    uv run python bench/bus_bench.py [--events 50000] [--rate 2000] [--rounds 3] [--port 19592]
        [--columns raw,raw-confluent,quix,alo,eos,alo-confluent,eos-confluent]
        [--json bench/results/bus.json]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer
from rich.console import Console
from rich.table import Table

from shopstream.devbroker import LocalBrokerConfig
from shopstream.devbroker import broker as local_broker
from shopstream.echo import EchoSettings, build_echo_service
from shopstream.events import ReviewSubmitted
from shopstream.kafka_io import pace
from shopstream.runtime.admin import ensure_topics
from shopstream.settings import BatchSettings, KafkaSettings
from shopstream.topics import TopicSettings

DEFAULT_BATCH = 500
DEFAULT_BATCH_TIMEOUT_MS = 5
"""How long a poll waits for a batch when fewer records are there (`BATCH__BATCH_TIMEOUT_MS`,
the services' default too). librdkafka's `consume` waits this long for a *full* batch, so on
confluent-kafka it is a floor under latency at a steady rate; aiokafka returns what is there."""
PARTITIONS = 3
console = Console(width=200)  # the table is wide; keep it whole in logs and pipes


def make_event(index: int) -> ReviewSubmitted:
    return ReviewSubmitted(
        tenant_id="bench",
        payload={
            "review_id": f"r{index}",
            "product_id": f"p{index % 100}",
            "text": "Arrived on time, the fabric feels solid and the colour matches the photos.",
        },
    )


async def produce(bootstrap: str, topic: str, count: int, rate: float | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        started = time.perf_counter()
        pending = []
        for index in range(count):
            if rate is not None:
                await pace(started, index, rate)
            event = make_event(index)
            pending.append(await producer.send(topic, event.to_json(), key=f"k{index}".encode()))
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def count_until(
    bootstrap: str,
    topic: str,
    count: int,
    within: float,
    *,
    latency: bool = True,
    read_committed: bool = False,
) -> list[float]:
    """Read `topic` until `count` records arrived; return each record's e2e latency in ms
    (or zeros when `latency` is off, so a throughput run does not pay for parsing)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"bench-reader-{uuid.uuid4().hex[:6]}",
        isolation_level="read_committed" if read_committed else "read_uncommitted",
    )
    await consumer.start()
    latencies: list[float] = []
    deadline = time.monotonic() + within
    try:
        while len(latencies) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=5_000)
            now = datetime.now(UTC)
            for records in batches.values():
                if not latency:
                    latencies.extend(0.0 for _ in records)
                    continue
                for record in records:
                    occurred = datetime.fromisoformat(
                        json.loads(record.value or b"{}")["occurred_at"]
                    )
                    latencies.append((now - occurred).total_seconds() * 1000)
    finally:
        await consumer.stop()
    return latencies


Runner = Callable[[str, str, str], Awaitable[Callable[[], Awaitable[None]]]]


async def start_shopstream(
    bootstrap: str,
    source: str,
    group: str,
    *,
    delivery: str = "at_least_once",
    batch: int = DEFAULT_BATCH,
    timeout_ms: int = DEFAULT_BATCH_TIMEOUT_MS,
    client: str = "confluent",
    linger_ms: int | None = None,
) -> Callable[[], Awaitable[None]]:
    # None: the services' own default.
    lingering = {} if linger_ms is None else {"linger_ms": linger_ms}
    settings = EchoSettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, client=client),
        input_topic=source,
        output_topic=source + ".out",
        group_id=group,
        http_port=0,
        create_topics=False,
        batch=BatchSettings(
            max_records=batch,
            batch_timeout_ms=timeout_ms,
            delivery=delivery,
            transactional_id=f"{group}-tx",
            **lingering,
        ),
    )
    service = build_echo_service(settings)
    await service.start()
    return service.stop


async def start_raw_loop(
    bootstrap: str,
    source: str,
    group: str,
    batch: int = DEFAULT_BATCH,
    timeout_ms: int = DEFAULT_BATCH_TIMEOUT_MS,
) -> Callable[[], Awaitable[None]]:
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    # Same delivery guarantees as the runtime's producer, so only the runtime's work differs.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=0, acks="all", enable_idempotence=True
    )
    await consumer.start()
    await producer.start()
    stopping = asyncio.Event()

    async def loop() -> None:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=batch)
            futures = [
                await producer.send(source + ".out", record.value, key=record.key)
                for records in batches.values()
                for record in records
            ]
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()

    task = asyncio.create_task(loop())

    async def stop() -> None:
        stopping.set()
        await task
        await consumer.stop()
        await producer.stop()

    return stop


async def start_raw_confluent_loop(
    bootstrap: str,
    source: str,
    group: str,
    batch: int = DEFAULT_BATCH,
    timeout_ms: int = DEFAULT_BATCH_TIMEOUT_MS,
) -> Callable[[], Awaitable[None]]:
    """The same loop on confluent-kafka: librdkafka consumes and produces in C threads."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
            "partitioner": "murmur2_random",
        }
    )
    consumer.subscribe([source])
    stopping = asyncio.Event()

    def one_batch() -> None:
        messages = consumer.consume(num_messages=batch, timeout=timeout_ms / 1000)
        if not messages:
            return
        for message in messages:
            if message.error() is None:
                producer.produce(source + ".out", message.value(), message.key())
        producer.flush()
        consumer.commit(asynchronous=False)

    async def loop() -> None:
        while not stopping.is_set():
            await asyncio.to_thread(one_batch)

    task = asyncio.create_task(loop())

    async def stop() -> None:
        stopping.set()
        await task
        await asyncio.to_thread(consumer.close)

    return stop


QUIX_VERSION = "3.28.1"
OUT_OF_PROCESS: dict[str, dict[str, float]] = {}
"""Per group, what a column's process reports: `startup_seconds` (process start and imports,
left out of the drain) and `cpu_seconds` (its CPU from ready to stop)."""


def peer_command(
    column: str, batch: int, timeout_ms: int, linger_ms: int | None = None
) -> list[str]:
    """The command that runs `column` in a process of its own."""
    if column == "quix":
        return [
            "uv",
            "run",
            "--isolated",
            "--no-project",
            "--with",
            f"quixstreams=={QUIX_VERSION}",
            "python",
            str(Path(__file__).with_name("quix_peer.py")),
        ]
    return [
        sys.executable,
        __file__,
        f"--batch={batch}",
        f"--batch-timeout-ms={timeout_ms}",
        *([] if linger_ms is None else [f"--linger-ms={linger_ms}"]),
        f"--peer={column}",
    ]


async def start_peer(
    command: list[str], bootstrap: str, source: str, group: str
) -> Callable[[], Awaitable[None]]:
    """Start a column's process; it prints `ready` when it runs, and its CPU seconds on SIGTERM."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command,
        bootstrap,
        source,
        group,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=300)
    if line.strip() != b"ready":
        process.kill()
        raise RuntimeError(f"{command} did not start: {line!r}")
    OUT_OF_PROCESS[group] = {"startup_seconds": time.perf_counter() - started}

    async def stop() -> None:
        process.terminate()
        output, _ = await process.communicate()
        for text in output.decode().splitlines():
            if text.startswith("cpu_seconds "):
                OUT_OF_PROCESS[group]["cpu_seconds"] = float(text.split()[1])

    return stop


async def run_peer(runner: Runner, bootstrap: str, source: str, group: str) -> None:
    """`--peer` mode: run one column in this process until SIGTERM, then print its CPU."""
    stop = await runner(bootstrap, source, group)
    started = time.process_time()
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    print("ready", flush=True)
    await stopping.wait()
    await stop()
    print(f"cpu_seconds {time.process_time() - started:.4f}", flush=True)


async def measure(
    bootstrap: str,
    name: str,
    runner: Runner,
    events: int,
    rate: float,
    *,
    read_committed: bool = False,
) -> dict[str, float]:
    tag = uuid.uuid4().hex[:6]
    backlog, steady = f"bench.{name}.{tag}.backlog", f"bench.{name}.{tag}.steady"
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    topics = TopicSettings(partitions=PARTITIONS)
    await ensure_topics(kafka, topics.specs((backlog, backlog + ".out", steady, steady + ".out")))
    await produce(bootstrap, backlog, events)
    started = time.perf_counter()
    group = f"bench-{name}-{tag}"
    stop = await runner(bootstrap, backlog, group)
    await count_until(
        bootstrap, backlog + ".out", events, 600, latency=False, read_committed=read_committed
    )
    seconds = time.perf_counter() - started
    drain_load = os.getloadavg()[0]
    await stop()
    peer = OUT_OF_PROCESS.pop(group)
    seconds -= peer["startup_seconds"]
    cpu_seconds = peer["cpu_seconds"]
    steady_count = int(rate * 10)
    stop = await runner(bootstrap, steady, f"bench-{name}-{tag}-steady")
    await asyncio.sleep(2)  # group joined
    reader = asyncio.create_task(
        count_until(bootstrap, steady + ".out", steady_count, 120, read_committed=read_committed)
    )
    await produce(bootstrap, steady, steady_count, rate=rate)
    latencies = sorted(await reader)
    await stop()
    return {
        "events": events,
        "seconds": seconds,
        "events_per_second": events / seconds,
        "cpu_us_per_event": cpu_seconds / events * 1e6,
        "steady_rate": rate,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "load_average": drain_load,
    }


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds."""
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


SHOPSTREAM_COLUMNS = {
    "alo": ("at_least_once", "aiokafka"),
    "eos": ("exactly_once", "aiokafka"),
    "alo-confluent": ("at_least_once", "confluent"),
    "eos-confluent": ("exactly_once", "confluent"),
}
"""The shopstream columns: (delivery, Kafka client)."""


def in_process_runners(
    batch: int, timeout_ms: int, linger_ms: int | None = None
) -> dict[str, Runner]:
    """What `--peer COLUMN` runs (the Quix column is its own script)."""
    sizing: dict[str, Any] = {"batch": batch, "timeout_ms": timeout_ms}
    runners: dict[str, Runner] = {
        "raw": functools.partial(start_raw_loop, **sizing),
        "raw-confluent": functools.partial(start_raw_confluent_loop, **sizing),
    }
    for name, (delivery, client) in SHOPSTREAM_COLUMNS.items():
        runners[name] = functools.partial(
            start_shopstream, delivery=delivery, client=client, linger_ms=linger_ms, **sizing
        )
    return runners


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=2_000, help="steady load, events/s")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per column")
    parser.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        help="records per batch (the services default to 64; exactly-once pays per batch)",
    )
    parser.add_argument(
        "--batch-timeout-ms",
        type=int,
        default=DEFAULT_BATCH_TIMEOUT_MS,
        help="most a poll waits for a batch, for the shopstream and raw columns alike",
    )
    parser.add_argument(
        "--linger-ms",
        type=int,
        default=None,
        help="the shopstream columns' producer linger (default: the services' own)",
    )
    parser.add_argument(
        "--columns",
        default="raw,raw-confluent,quix,alo,eos,alo-confluent,eos-confluent",
        help="comma-separated columns, run in this order each round",
    )
    parser.add_argument("--json", type=Path, default=Path("bench/results/bus.json"))
    parser.add_argument(
        "--port", type=int, default=19592, help="local broker port (controller: port + 1)"
    )
    parser.add_argument(
        "--peer",
        metavar="COLUMN",
        help="(internal) run COLUMN in this process on BOOTSTRAP SOURCE GROUP, until SIGTERM",
    )
    parser.add_argument("peer_args", nargs="*", metavar="BOOTSTRAP SOURCE GROUP")
    args = parser.parse_args()
    if args.peer is not None:
        runners = in_process_runners(args.batch, args.batch_timeout_ms, args.linger_ms)
        if args.peer not in runners or len(args.peer_args) != 3:
            parser.error(f"--peer takes one of {sorted(runners)} and BOOTSTRAP SOURCE GROUP")
        await run_peer(runners[args.peer], *args.peer_args)
        return
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    config = LocalBrokerConfig(port=args.port, controller_port=args.port + 1)
    if bootstrap is None:
        local_broker.ensure_jars(config)
        bootstrap = local_broker.start(config).bootstrap_servers
    # Every column runs once per round, in this order, each in a process of its own.
    available: dict[str, tuple[str, bool]] = {
        "raw": ("raw aiokafka loop", False),
        "raw-confluent": ("raw confluent-kafka loop", False),
        "quix": ("Quix Streams app (at-least-once)", False),
        "alo": ("shopstream on aiokafka (at-least-once)", False),
        "eos": ("shopstream on aiokafka (exactly-once)", True),
        "alo-confluent": ("shopstream on confluent-kafka, the default (at-least-once)", False),
        "eos-confluent": ("shopstream on confluent-kafka, the default (exactly-once)", True),
    }
    chosen = [name.strip() for name in args.columns.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        parser.error(f"unknown columns {unknown}; choose from {sorted(available)}")
    columns_runs: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    try:
        for _ in range(args.rounds):
            for name in chosen:
                _, read_committed = available[name]
                command = peer_command(name, args.batch, args.batch_timeout_ms, args.linger_ms)
                runner = functools.partial(start_peer, command)
                columns_runs[name].append(
                    await measure(
                        bootstrap,
                        name,
                        runner,
                        args.events,
                        args.rate,
                        read_committed=read_committed,
                    )
                )
    finally:
        if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            local_broker.stop(config)
    report(args, {name: available[name][0] for name in chosen}, columns_runs)


def report(
    args: argparse.Namespace,
    titles: dict[str, str],
    columns_runs: dict[str, list[dict[str, float]]],
) -> None:
    """Print the side-by-side table and the ratios the bars name; write the JSON."""
    medians = {name: median_of(runs) for name, runs in columns_runs.items()}
    table = Table(
        title=f"bus path, {args.events} events, {PARTITIONS} partitions, batch {args.batch} "
        f"(polls wait at most {args.batch_timeout_ms} ms), "
        f"median of {args.rounds} interleaved rounds, one process per column"
    )
    table.add_column("metric")
    for name in medians:
        table.add_column(titles[name], justify="right")
    table.add_row(
        "events/s (backlog drain)", *(f"{c['events_per_second']:,.0f}" for c in medians.values())
    )
    table.add_row(
        "CPU per event, the column's process (µs)",
        *(f"{c['cpu_us_per_event']:.0f}" for c in medians.values()),
    )
    for key in ("p50_ms", "p99_ms"):
        table.add_row(
            f"{key[:3]} latency @ {args.rate:,.0f}/s (ms)",
            *(f"{c[key]:.1f}" for c in medians.values()),
        )
    table.add_row("load average (1 min)", *(f"{c['load_average']:.1f}" for c in medians.values()))
    console.print(table)
    rates = {name: figures["events_per_second"] for name, figures in medians.items()}
    for baseline in ("raw", "quix"):
        for name, rate in rates.items():
            if name not in ("raw", "quix") and baseline in rates:
                console.print(f"{titles[name]} / {titles[baseline]}: {rate / rates[baseline]:.2f}")
    for at_least_once, exactly_once in (("alo", "eos"), ("alo-confluent", "eos-confluent")):
        if at_least_once in rates and exactly_once in rates:
            console.print(
                f"{titles[exactly_once]} / at-least-once: "
                f"{rates[exactly_once] / rates[at_least_once]:.2f} (target >= 0.80)"
            )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "columns": {titles[name]: figures for name, figures in medians.items()},
                "batch": args.batch,
                "batch_timeout_ms": args.batch_timeout_ms,
                "load_average_at_end": os.getloadavg()[0],
                "rounds_events_per_second": {
                    titles[name]: [r["events_per_second"] for r in runs]
                    for name, runs in columns_runs.items()
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
