"""Sentiment benchmark: the service through a real broker vs the same model called directly.

1. raw: the model's own `predict_batch` over the inputs, in chunks of the service's batch size,
   in this process on one worker thread like the service's (after one warm-up chunk);
2. pipeline: `python -m shopstream_sentiment` in a subprocess drains the same inputs, published
   at once onto a ready (warmed-up) service; events/s from the first publish to the last result
   read back by a separate consumer. Raw and pipeline alternate over `--rounds` slices of the
   inputs, so background load on the machine affects both sides alike;
3. latency: a steady load at half the pipeline's measured rate, occurred_at at send -> result
   read back, p50 and p99;
4. memory: resident set size of the service process after start-up and at its peak (Linux
   /proc: VmRSS and VmHWM).

    uv run python bench/sentiment_bench.py [--events 600] [--rounds 3] [--steady-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from bench_broker import bench_broker
from rich.console import Console
from rich.table import Table

from shopstream.events import Event, ReviewSubmitted
from shopstream.runtime.admin import ensure_topics
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings
from shopstream_sentiment.config import SentimentSettings
from shopstream_sentiment.handlers import review_text
from shopstream_sentiment.samples import sample_rows

PARTITIONS = 3
EventT = TypeVar("EventT", bound=Event)
PORT = 19492
"""The local broker's port (its controller listens on the next one)."""
console = Console()


def make_reviews(count: int, tag: str) -> list[ReviewSubmitted]:
    rows = sample_rows()
    return [
        ReviewSubmitted(
            tenant_id="bench",
            payload={
                "review_id": f"{tag}-{index}",
                "product_id": f"p{index % 20}",
                "text": rows[index % len(rows)]["text"],
                "rating": rows[index % len(rows)]["rating"],
                "locale": rows[index % len(rows)]["locale"],
            },
        )
        for index in range(count)
    ]


class RawModel:
    """The model called directly: no Kafka, no runtime, the same `predict_batch`."""

    def __init__(self, batch: int) -> None:
        from shopstream_sentiment.model import SentimentModel  # noqa: PLC0415 - loads torch

        self.batch = batch
        self.model = SentimentModel(SentimentSettings().model)
        # One worker thread, as the service's InferenceRunner calls the model: torch's CPU
        # speed depends on the calling thread (measured here: up to 4x apart between the main
        # thread and a worker on a busy machine), so only the same setup is the same call.
        self.worker = ThreadPoolExecutor(max_workers=1)
        began = time.perf_counter()
        self.model.load()
        self.load_seconds = time.perf_counter() - began

    def _score(self, events: list[ReviewSubmitted]) -> float:
        inputs = [review_text(event) for event in events]
        began = time.perf_counter()
        for start in range(0, len(inputs), self.batch):
            self.model.predict_batch(inputs[start : start + self.batch])
        return time.perf_counter() - began

    async def score(self, events: list[ReviewSubmitted]) -> float:
        """Seconds to score `events` in chunks of the service's batch size."""
        return await asyncio.get_running_loop().run_in_executor(self.worker, self._score, events)

    def close(self) -> None:
        self.worker.shutdown()
        self.model.unload()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    def __init__(self, bootstrap: str, topics: TopicSettings, batch: int) -> None:
        self.http_port = free_port()
        env = {
            **os.environ,
            "SENTIMENT_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "SENTIMENT_TOPICS__REVIEWS": topics.reviews,
            "SENTIMENT_TOPICS__SENTIMENT": topics.sentiment,
            "SENTIMENT_TOPICS__INSIGHTS": topics.insights,
            "SENTIMENT_TOPICS__PARTITIONS": str(PARTITIONS),
            "SENTIMENT_GROUP_ID": topics.reviews + ".group",
            "SENTIMENT_HTTP_PORT": str(self.http_port),
            "SENTIMENT_BATCH__MAX_RECORDS": str(batch),
            "SENTIMENT_LOG_LEVEL": "WARNING",
        }
        self.spawned = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-m", "shopstream_sentiment"], env=env)

    def get(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode("utf-8"))

    async def wait_ready(self, limit: float = 600) -> float:
        """Seconds from spawning the process until it reported ready."""
        while time.perf_counter() - self.spawned < limit:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with {self.process.returncode}")
            with contextlib.suppress(OSError):
                if self.get("/health/ready").startswith("ready"):
                    return time.perf_counter() - self.spawned
            await asyncio.sleep(0.5)
        raise TimeoutError("the service did not become ready")

    def memory_kib(self, field: str) -> int:
        """`VmRSS` (now) or `VmHWM` (the kernel's peak) of the service process, in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise LookupError(field)

    def metric(self, name: str) -> float:
        for line in self.get("/metrics").splitlines():
            if line.startswith((name + " ", name + "{")):
                return float(line.rsplit(" ", 1)[1])
        return float("nan")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


class ResultReader:
    """Reads results from the topic's end; records when each input's result arrived."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"bench-reader-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="latest",
        )
        self.arrived: dict[str, datetime] = {}

    async def start(self) -> None:
        await self.consumer.start()
        while not self.consumer.assignment():  # joined and positioned before anything is sent
            await self.consumer.getmany(timeout_ms=100)

    async def until(self, wanted: set[str], limit: float) -> None:
        deadline = time.monotonic() + limit
        while not wanted <= self.arrived.keys():
            if time.monotonic() > deadline:
                missing = len(wanted - self.arrived.keys())
                raise TimeoutError(f"{missing} results still missing")
            batches = await self.consumer.getmany(timeout_ms=50, max_records=5_000)
            now = datetime.now(UTC)
            for records in batches.values():
                for record in records:
                    cause = json.loads(record.value or b"{}").get("causation_id")
                    self.arrived.setdefault(cause, now)

    async def stop(self) -> None:
        await self.consumer.stop()


async def send(
    bootstrap: str, topic: str, events: Sequence[Event], rate: float | None = None
) -> dict[str, datetime]:
    """Publish `events` (at `rate` per second if given); return each event's send time."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    sent: dict[str, datetime] = {}
    try:
        began = time.perf_counter()
        pending = []
        for index, event in enumerate(events):
            if rate is not None:
                delay = began + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            # Stamped at send time, so occurred_at -> result is the end-to-end latency.
            stamped = event.model_copy(update={"occurred_at": datetime.now(UTC)})
            sent[str(event.event_id)] = stamped.occurred_at
            key = stamped.message_key().encode()
            pending.append(await producer.send(topic, stamped.to_json(), key=key))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def alternate_rounds(
    score_raw: Callable[[list[EventT]], Awaitable[float]],
    events: list[EventT],
    rounds: int,
    *,
    bootstrap: str,
    topic: str,
    reader: ResultReader,
    limit: float = 900,
) -> tuple[float, float]:
    """(raw seconds, pipeline seconds) over `events` in `rounds` slices, each slice scored raw
    and then drained through the service, so a change in the machine's background load hits
    both sides alike instead of skewing the ratio. Pipeline time runs from the first publish
    to the last result read back (the reader reads while the producer sends)."""
    raw_seconds = pipeline_seconds = 0.0
    size = -(-len(events) // rounds)
    for part in (events[start : start + size] for start in range(0, len(events), size)):
        raw_seconds += await score_raw(part)
        began = time.perf_counter()
        reading = asyncio.create_task(reader.until({str(e.event_id) for e in part}, limit))
        await send(bootstrap, topic, part)
        await reading
        pipeline_seconds += time.perf_counter() - began
    return raw_seconds, pipeline_seconds


async def steady_latencies_ms(
    bootstrap: str, topic: str, reader: ResultReader, events: Sequence[Event], rate: float
) -> list[float]:
    """End-to-end latencies (occurred_at at send -> result read back) of `events` sent at
    `rate` per second, sorted."""
    wanted = {str(e.event_id) for e in events}
    reading = asyncio.create_task(reader.until(wanted, len(events) / rate + 300))
    sent = await send(bootstrap, topic, events, rate=rate)
    await reading
    return sorted(
        (reader.arrived[event_id] - at).total_seconds() * 1000 for event_id, at in sent.items()
    )


async def measure(
    bootstrap: str,
    batch: int,
    events: list[ReviewSubmitted],
    rounds: int,
    steady_seconds: float,
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    topics = TopicSettings(
        reviews=f"bench.sentiment.{tag}.reviews",
        sentiment=f"bench.sentiment.{tag}.scored",
        insights=f"bench.sentiment.{tag}.insights",
        partitions=PARTITIONS,
    )
    await ensure_topics(KafkaSettings(bootstrap_servers=bootstrap), topics.specs())
    # The service loads its copy of the model while this process loads the raw baseline's.
    service = ServiceProcess(bootstrap, topics, batch)
    reader = ResultReader(bootstrap, topics.sentiment)
    raw: RawModel | None = None
    try:
        raw = await asyncio.to_thread(RawModel, batch)
        start_seconds = await service.wait_ready()
        idle_rss = service.memory_kib("VmRSS")
        await reader.start()
        warm = make_reviews(raw.batch, "warm")
        await raw.score(warm)
        await send(bootstrap, topics.reviews, warm)
        await reader.until({str(e.event_id) for e in warm}, 120)

        watched = (
            "shopstream_sentiment_inference_seconds_sum",
            "shopstream_sentiment_batch_size_count",
        )
        before = {name: service.metric(name) for name in watched}
        raw_seconds, pipeline_seconds = await alternate_rounds(
            raw.score, events, rounds, bootstrap=bootstrap, topic=topics.reviews, reader=reader
        )
        inference, batches = (service.metric(name) - before[name] for name in watched)
        pipeline_rate = len(events) / pipeline_seconds

        rate = pipeline_rate / 2
        steady = make_reviews(max(20, int(rate * steady_seconds)), "steady")
        latencies = await steady_latencies_ms(bootstrap, topics.reviews, reader, steady, rate)
        peak_rss = service.memory_kib("VmHWM")
    finally:
        await reader.stop()
        exit_code = service.stop()
        if raw is not None:
            raw.close()
    return {
        "events": len(events),
        "rounds": rounds,
        "raw_seconds": raw_seconds,
        "raw_events_per_second": len(events) / raw_seconds,
        "raw_model_load_seconds": raw.load_seconds,
        "pipeline_seconds": pipeline_seconds,
        "pipeline_events_per_second": pipeline_rate,
        "ratio": raw_seconds / pipeline_seconds,
        "model_busy_share": inference / pipeline_seconds,
        "mean_batch_size": len(events) / batches,
        "service_start_seconds": start_seconds,
        "steady_rate": rate,
        "steady_events": len(steady),
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)],
        "rss_idle_mb": idle_rss / 1024,
        "rss_peak_mb": peak_rss / 1024,
        "service_exit_code": exit_code,
        "load_average": os.getloadavg(),
    }


def report(result: dict[str, Any], batch: int) -> None:
    title = (
        f"sentiment, {result['events']} reviews (zh + en) in {result['rounds']} alternating "
        f"rounds, batch {batch}"
    )
    rows = [
        ("raw predict_batch, events/s", f"{result['raw_events_per_second']:.1f}"),
        ("pipeline through Kafka, events/s", f"{result['pipeline_events_per_second']:.1f}"),
        ("pipeline / raw (target >= 0.90)", f"{result['ratio']:.2f}"),
        *service_rows(result),
        ("model load in this process (s)", f"{result['raw_model_load_seconds']:.1f}"),
        load_average_row(result),
    ]
    console.print(metric_table(title, rows))


def service_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """What a broker bench reports of the service process: the drain, steady latency, memory
    and start-up."""
    rate = result["steady_rate"]
    return [
        ("model busy share during the drain", f"{result['model_busy_share']:.0%}"),
        ("mean batch size during the drain", f"{result['mean_batch_size']:.1f}"),
        (f"p50 end-to-end @ {rate:.1f}/s (ms)", f"{result['p50_ms']:.0f}"),
        (f"p99 end-to-end @ {rate:.1f}/s (ms)", f"{result['p99_ms']:.0f}"),
        ("service RSS after start-up (MiB)", f"{result['rss_idle_mb']:.0f}"),
        ("service RSS peak (MiB)", f"{result['rss_peak_mb']:.0f}"),
        ("service start to ready (s)", f"{result['service_start_seconds']:.1f}"),
    ]


def load_average_row(result: dict[str, Any]) -> tuple[str, str]:
    return "load average (1, 5, 15 min)", " ".join(f"{v:.1f}" for v in result["load_average"])


def metric_table(title: str, rows: Sequence[tuple[str, str]]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    return table


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=SentimentSettings().batch.max_records)
    parser.add_argument("--steady-seconds", type=float, default=30.0)
    parser.add_argument("--json", type=Path, default=Path("bench/results/sentiment.json"))
    args = parser.parse_args()
    events = make_reviews(args.events, "drain")
    with (
        bench_broker(PORT) as bootstrap,
        console.status("loading models; raw and pipeline rounds; then steady load..."),
    ):
        result = await measure(bootstrap, args.batch, events, args.rounds, args.steady_seconds)
    report(result, args.batch)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"batch": args.batch, **result}, indent=2))
    console.print(f"written to {args.json}")


if __name__ == "__main__":
    asyncio.run(main())
