"""The sentiment part of `shopstream demo`: the sample shop's reviews through the real service.

The service runs in this process, against the broker the demo started; results are read back
from Kafka like any downstream consumer would, not taken from the service's memory.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from shopstream import demos
from shopstream.events import ReviewSubmitted
from shopstream.kafka_io import publish_paced
from shopstream.runtime.tables import TopicReader
from shopstream.services import DemoOptions
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings

LABEL_STYLES = {"positive": "green", "neutral": "yellow", "negative": "red"}
POLARITY_MARKS = {"positive": "+", "neutral": "~", "negative": "-"}
SHOWN_ROWS = 14
METRIC_PREFIXES = (
    "shopstream_sentiment_events_total",
    "shopstream_sentiment_inference_seconds_count",
    "shopstream_sentiment_inference_seconds_sum",
    "shopstream_sentiment_model_load_seconds",
    "shopstream_sentiment_insight_products",
)


@dataclass
class DemoOutcome:
    sent: int
    scored: int
    seconds: float
    model_load_seconds: float
    metrics_url: str
    labels: Counter[str] = field(default_factory=Counter)


class TailFromNow:
    """Reads a topic from its current end, outside any consumer group, filtered by tenant."""

    def __init__(self, kafka: KafkaSettings, topic: str, tenant_id: str) -> None:
        self._reader = TopicReader(kafka, topic, from_beginning=False)
        self._tenant_id = tenant_id

    async def start(self) -> None:
        await self._reader.start()

    async def poll(self) -> list[dict[str, Any]]:
        records = await self._reader.poll(max_records=500)
        documents = [json.loads(record.value) for record in records if record.value]
        return [d for d in documents if d.get("tenant_id") == self._tenant_id]

    async def stop(self) -> None:
        await self._reader.stop()


def _scored_row(scored: dict[str, Any], review: ReviewSubmitted) -> tuple[Text | str, ...]:
    payload = scored["payload"]
    label = payload["label"]
    aspects = ", ".join(
        a["aspect"] + POLARITY_MARKS.get(a["polarity"], "") for a in payload["aspects"][:3]
    )
    text = review.payload.text
    stars = "" if review.payload.rating is None else "★" * round(review.payload.rating)
    return (
        review.payload.product_id,
        review.payload.locale or "",
        stars,
        Text(label, style=LABEL_STYLES.get(label, "")),
        f"{payload['score']:.2f}",
        aspects,
        text if len(text) <= 48 else text[:47] + "…",
    )


def _live_view(rows: list[tuple[Text | str, ...]], done: int, total: int, began: float) -> Group:
    table = Table(
        "product",
        "lang",
        "stars",
        "label",
        "P(pos)",
        "aspects",
        "review",
        title="review.scored, as they arrive on shop.reviews.sentiment",
    )
    for row in rows[-SHOWN_ROWS:]:
        table.add_row(*row)
    caption = Text(f"scored {done}/{total} in {time.perf_counter() - began:.1f} s")
    return Group(table, caption)


def insights_table(latest: dict[str, dict[str, Any]]) -> Table:
    table = Table(
        "product",
        "reviews",
        "+ / ~ / -",
        "neg 7d",
        "neg 30d",
        "neg all",
        "trend",
        "top pain points",
        "alert",
        title="product.insights.updated (latest per product, shop.reviews.insights)",
    )
    for product_id in sorted(latest):
        payload = latest[product_id]["payload"]
        shares = {w["window"]: w["negative_share"] for w in payload["windows"]}
        mix = payload["mix"]
        pains = "; ".join(
            f"{p['aspect']} x{p['mentions']}" + (f" “{p['examples'][0]}”" if p["examples"] else "")
            for p in payload["pain_points"][:2]
        )
        alert = Text("ALERT", style="bold red") if payload["alert"] else Text("-", style="dim")
        table.add_row(
            product_id,
            str(payload["review_count"]),
            f"{mix['positive']} / {mix['neutral']} / {mix['negative']}",
            *(f"{shares[w]:.0%}" if w in shares else "-" for w in ("7d", "30d", "all")),
            f"{payload['trend']:+.2f}",
            pains,
            alert,
        )
    return table


def scrape_metrics(url: str) -> list[str]:
    # The URL is the demo's own service on 127.0.0.1, built just above.
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
        body = response.read().decode("utf-8")
    return [line for line in body.splitlines() if line.startswith(METRIC_PREFIXES)]


async def _wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


class ResultsWatcher:
    """Collects this run's scored reviews and latest insights per product from Kafka."""

    def __init__(
        self, kafka: KafkaSettings, topics: TopicSettings, reviews: list[ReviewSubmitted]
    ) -> None:
        tenant_id = reviews[0].tenant_id
        self.by_id = {str(event.event_id): event for event in reviews}
        self.expected = Counter(event.payload.product_id for event in reviews)
        self.scored_tail = TailFromNow(kafka, topics.sentiment, tenant_id)
        self.insights_tail = TailFromNow(kafka, topics.insights, tenant_id)
        self.rows: list[tuple[Text | str, ...]] = []
        self.labels: Counter[str] = Counter()
        self.latest: dict[str, dict[str, Any]] = {}

    async def start(self) -> None:
        await self.scored_tail.start()
        await self.insights_tail.start()

    async def stop(self) -> None:
        await self.scored_tail.stop()
        await self.insights_tail.stop()

    @property
    def scored(self) -> int:
        return len(self.rows)

    def complete(self) -> bool:
        return self.scored >= len(self.by_id) and all(
            product in self.latest and self.latest[product]["payload"]["review_count"] >= count
            for product, count in self.expected.items()
        )

    async def watch(self, console: Console, began: float, deadline: float) -> None:
        seen: set[str] = set()
        total = len(self.by_id)
        view = _live_view(self.rows, 0, total, began)
        with Live(view, console=console, refresh_per_second=8) as live:
            while time.monotonic() < deadline and not self.complete():
                for scored in await self.scored_tail.poll():
                    source = self.by_id.get(scored["causation_id"])
                    if source is not None and scored["causation_id"] not in seen:
                        seen.add(scored["causation_id"])
                        self.labels[scored["payload"]["label"]] += 1
                        self.rows.append(_scored_row(scored, source))
                for insight in await self.insights_tail.poll():
                    self.latest[insight["payload"]["product_id"]] = insight
                live.update(_live_view(self.rows, self.scored, total, began))


def _report(console: Console, latest: dict[str, dict[str, Any]], metrics_url: str) -> None:
    console.print(insights_table(latest))
    for product_id, insight in sorted(latest.items()):
        if insight["payload"]["alert"]:
            reason = insight["payload"]["alert_reason"]
            console.print(f"[bold red]alert[/bold red] {product_id}: {reason}")
    console.print(f"[bold]/metrics[/bold] at {metrics_url}, scraped once:")
    for line in scrape_metrics(metrics_url):
        console.print(f"  {line}", highlight=False)


async def run_sentiment_demo(
    console: Console,
    kafka: KafkaSettings,
    *,
    rate: float,
    metrics_port: int,
    keep_running: bool,
    max_seconds: float = 180.0,
) -> DemoOutcome:
    # Imported here: the service is its own package, and the shared CLI must work without it.
    from shopstream_sentiment.app import build_service  # noqa: PLC0415
    from shopstream_sentiment.config import SentimentSettings  # noqa: PLC0415
    from shopstream_sentiment.samples import SAMPLE_TENANT, sample_reviews  # noqa: PLC0415

    settings = SentimentSettings(kafka=kafka, http_port=metrics_port, log_json=False)
    service = build_service(settings)
    load_seconds = await demos.start_in_view(
        console, service, "loading the sentiment model (converted once on first use)..."
    )
    demos.announce_ready(console, service, load_seconds, " (model, topics, insights restore)")
    metrics_url = demos.metrics_url(service)
    # A fresh tenant per run keeps each run's insights its own on a broker that keeps its data.
    reviews = sample_reviews(f"{SAMPLE_TENANT}-{secrets.token_hex(2)}")
    watcher = ResultsWatcher(kafka, settings.topics, reviews)
    try:
        await watcher.start()
        console.print(
            f"publishing {len(reviews)} reviews of tenant [bold]{reviews[0].tenant_id}[/bold] "
            f"({len(watcher.expected)} products, zh + en) at {rate:.0f}/s"
        )
        began = time.perf_counter()
        publisher = asyncio.create_task(
            publish_paced(kafka, settings.topics.reviews, reviews, rate)
        )
        await watcher.watch(console, began, time.monotonic() + max_seconds)
        await publisher
        console.print()
        seconds = time.perf_counter() - began
        await asyncio.to_thread(_report, console, watcher.latest, metrics_url)
        if keep_running:
            console.print(
                f"[green]the sentiment service keeps running[/green] (metrics at {metrics_url}); "
                f"publish more with `shopstream publish {settings.topics.reviews} FILE`. "
                "Ctrl-C stops it; the broker stays up."
            )
            await _wait_for_stop_signal()
    finally:
        await watcher.stop()
        with console.status("stopping the sentiment service (drains its batch in flight)..."):
            await service.stop()
    return DemoOutcome(
        sent=len(reviews),
        scored=watcher.scored,
        seconds=seconds,
        model_load_seconds=load_seconds,
        metrics_url=metrics_url,
        labels=watcher.labels,
    )


async def demo_step(options: DemoOptions) -> bool:
    """`shopstream demo`'s sentiment step: every sample review scored."""
    outcome = await run_sentiment_demo(
        options.console,
        options.kafka,
        rate=options.rate,
        metrics_port=options.metrics_port,
        keep_running=options.keep_running,
    )
    labels = ", ".join(f"{count} {label}" for label, count in outcome.labels.most_common())
    options.console.print(
        f"sentiment service: {outcome.scored}/{outcome.sent} reviews scored ({labels}) "
        f"in {outcome.seconds:.1f} s after a {outcome.model_load_seconds:.1f} s start"
    )
    return outcome.scored == outcome.sent
