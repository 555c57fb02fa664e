"""Describer benchmark: descriptions through a real broker vs the same generator called directly.

1. raw: `DescriberModel.generate` on the service's own description prompts, in chunks of the
   service's batch size, one worker thread (as the service's InferenceRunner), greedy, the same
   `max_new_tokens`;
2. pipeline: `python -m shopstream_describer` in a subprocess drains the same products
   (published at once onto a ready, warmed-up service); items/s from the first publish to the
   last description read back. The service runs with one generation attempt, so both sides
   generate exactly once per product; what the pipeline adds is Kafka, the grounding and
   compliance checks, the composer's bullets and the result events. Raw and pipeline alternate
   over `--rounds` slices, so background load hits both alike;
3. latency: a few products at half the measured pipeline rate, occurred_at at send -> result
   read back, p50 and max;
4. memory: the service process's resident set after start-up and at its peak (VmRSS, VmHWM).

English products only: the default SmolLM2 writes English, other locales are composed.
It is slow on a CPU, hence small defaults; sizes are flags.

    uv run python bench/describer_bench.py [--products 16] [--rounds 2] [--batch 8]
        [--max-new-tokens 32] [--steady 4] [--port 22592]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sentiment_bench import (
    ResultReader,
    ServiceProcess,
    alternate_rounds,
    free_port,
    send,
    steady_latencies_ms,
)

from shopstream import local_broker
from shopstream.events import ProductUpserted
from shopstream.local_broker import LocalBrokerConfig
from shopstream.runtime.admin import ensure_topics
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings
from shopstream_describer.compliance import Lexicons
from shopstream_describer.config import GeneratorConfig
from shopstream_describer.facts import ProductFacts
from shopstream_describer.pipeline import DescriberPipeline, DescriptionJob

PARTITIONS = 2
DEFAULT_PORT = 22_592
console = Console()

KINDS = ("Tote Bag", "Water Bottle", "Rain Jacket", "Desk Lamp", "Running Shoe", "Wool Scarf")
MATERIALS = ("canvas", "stainless steel", "recycled nylon", "aluminium", "mesh", "merino wool")
COLOURS = ("Navy", "Olive", "Black", "Sand", "Red", "Grey", "White")
BRANDS = ("Acme", "Trailhead", "Northwind", "Lumen")


def make_products(count: int, tag: str) -> list[ProductUpserted]:
    """Distinct English products (different ids and facts), so none is skipped as unchanged."""
    products = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        products.append(
            ProductUpserted(
                tenant_id="bench",
                payload={
                    "product_id": f"{tag}-{index}",
                    "title": f"{BRANDS[index % len(BRANDS)]} {kind} {index}",
                    "brand": BRANDS[index % len(BRANDS)],
                    "category": kind,
                    "attributes": {
                        "material": MATERIALS[(index // 2) % len(MATERIALS)],
                        "colour": COLOURS[index % len(COLOURS)],
                        "weight": f"{200 + 10 * index} g",
                    },
                },
            )
        )
    return products


class RawGenerator:
    """The generator called directly on the prompts the service would build."""

    def __init__(self, config: GeneratorConfig) -> None:
        from shopstream_describer.model import DescriberModel  # noqa: PLC0415 - loads torch

        self.config = config
        self.model = DescriberModel(config)
        self.pipeline = DescriberPipeline(self.model)
        self.lexicon = Lexicons().default
        self.worker = ThreadPoolExecutor(max_workers=1)
        began = time.perf_counter()
        self.model.load()
        self.load_seconds = time.perf_counter() - began

    def _generate(self, products: list[ProductUpserted]) -> float:
        prompts = [
            self.pipeline.description_prompt(
                DescriptionJob(ProductFacts.from_payload(event.payload), "en", self.lexicon)
            )
            for event in products
        ]
        began = time.perf_counter()
        for start in range(0, len(prompts), self.config.batch_size):
            self.model.generate(
                prompts[start : start + self.config.batch_size],
                attempt=1,
                max_new_tokens=self.config.description_tokens,
            )
        return time.perf_counter() - began

    async def generate(self, products: list[ProductUpserted]) -> float:
        return await asyncio.get_running_loop().run_in_executor(
            self.worker, self._generate, products
        )

    def close(self) -> None:
        self.worker.shutdown()
        self.model.unload()


class DescriberProcess(ServiceProcess):
    """`python -m shopstream_describer` configured for the bench: one attempt per product."""

    def __init__(self, bootstrap: str, topics: TopicSettings, config: GeneratorConfig) -> None:
        self.http_port = free_port()
        env = {
            **os.environ,
            "DESCRIBER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "DESCRIBER_TOPICS__PRODUCTS": topics.products,
            "DESCRIBER_TOPICS__COPY_REQUESTS": topics.copy_requests,
            "DESCRIBER_TOPICS__DESCRIPTIONS": topics.descriptions,
            "DESCRIBER_TOPICS__COPIES": topics.copies,
            "DESCRIBER_TOPICS__PARTITIONS": str(PARTITIONS),
            "DESCRIBER_GROUP_ID": topics.products + ".group",
            "DESCRIBER_HTTP_PORT": str(self.http_port),
            "DESCRIBER_BATCH__MAX_RECORDS": str(config.batch_size),
            "DESCRIBER_MODEL__BATCH_SIZE": str(config.batch_size),
            "DESCRIBER_MODEL__MAX_ATTEMPTS": "1",
            "DESCRIBER_MODEL__DESCRIPTION_TOKENS": str(config.description_tokens),
            "DESCRIBER_LOG_LEVEL": "WARNING",
        }
        self.spawned = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-m", "shopstream_describer"], env=env)


async def measure(
    bootstrap: str,
    config: GeneratorConfig,
    products: list[ProductUpserted],
    rounds: int,
    steady: int,
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    topics = TopicSettings(
        products=f"bench.describer.{tag}.products",
        copy_requests=f"bench.describer.{tag}.copy-requests",
        descriptions=f"bench.describer.{tag}.descriptions",
        copies=f"bench.describer.{tag}.copies",
        partitions=PARTITIONS,
    )
    await ensure_topics(KafkaSettings(bootstrap_servers=bootstrap), topics.specs())
    service = DescriberProcess(bootstrap, topics, config)
    reader = ResultReader(bootstrap, topics.descriptions)
    raw: RawGenerator | None = None
    try:
        raw = await asyncio.to_thread(RawGenerator, config)
        start_seconds = await service.wait_ready()
        idle_rss = service.memory_kib("VmRSS")
        await reader.start()
        warm = make_products(config.batch_size, f"warm-{tag}")
        await raw.generate(warm)
        await send(bootstrap, topics.products, warm)
        await reader.until({str(e.event_id) for e in warm}, 900)

        watched = (
            "shopstream_describer_inference_seconds_sum",
            "shopstream_describer_batch_size_count",
        )
        before = {name: service.metric(name) for name in watched}
        raw_seconds, pipeline_seconds = await alternate_rounds(
            raw.generate,
            products,
            rounds,
            bootstrap=bootstrap,
            topic=topics.products,
            reader=reader,
            limit=3_600,
        )
        inference, batches = (service.metric(name) - before[name] for name in watched)
        pipeline_rate = len(products) / pipeline_seconds

        rate = pipeline_rate / 2
        trickle = make_products(steady, f"steady-{tag}")
        latencies = [
            ms / 1000
            for ms in await steady_latencies_ms(bootstrap, topics.products, reader, trickle, rate)
        ]
        peak_rss = service.memory_kib("VmHWM")
    finally:
        await reader.stop()
        exit_code = service.stop()
        if raw is not None:
            raw.close()
    return {
        "products": len(products),
        "rounds": rounds,
        "batch": config.batch_size,
        "max_new_tokens": config.description_tokens,
        "raw_seconds": raw_seconds,
        "raw_items_per_second": len(products) / raw_seconds,
        "raw_seconds_per_item": raw_seconds / len(products),
        "raw_model_load_seconds": raw.load_seconds,
        "pipeline_seconds": pipeline_seconds,
        "pipeline_items_per_second": pipeline_rate,
        "pipeline_seconds_per_item": pipeline_seconds / len(products),
        "ratio": raw_seconds / pipeline_seconds,
        "model_busy_share": inference / pipeline_seconds,
        "mean_batch_size": len(products) / batches if batches else float("nan"),
        "service_start_seconds": start_seconds,
        "steady_rate": rate,
        "steady_items": len(trickle),
        "steady_p50_seconds": latencies[len(latencies) // 2],
        "steady_max_seconds": latencies[-1],
        "rss_idle_mb": idle_rss / 1024,
        "rss_peak_mb": peak_rss / 1024,
        "service_exit_code": exit_code,
        "load_average": os.getloadavg(),
    }


def report(result: dict[str, Any]) -> None:
    title = (
        f"describer, {result['products']} English products in {result['rounds']} alternating "
        f"rounds, batch {result['batch']}, {result['max_new_tokens']} new tokens, greedy"
    )
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rate = result["steady_rate"]
    rows = [
        ("raw batched generate, items/s", f"{result['raw_items_per_second']:.3f}"),
        ("pipeline through Kafka, items/s", f"{result['pipeline_items_per_second']:.3f}"),
        ("pipeline / raw (target >= 0.90)", f"{result['ratio']:.2f}"),
        ("raw seconds per item", f"{result['raw_seconds_per_item']:.2f}"),
        ("pipeline seconds per item (drain)", f"{result['pipeline_seconds_per_item']:.2f}"),
        ("model busy share during the drain", f"{result['model_busy_share']:.0%}"),
        ("mean batch size during the drain", f"{result['mean_batch_size']:.1f}"),
        (
            f"end-to-end p50 @ {rate:.3f}/s, {result['steady_items']} items (s)",
            f"{result['steady_p50_seconds']:.1f}",
        ),
        ("end-to-end max (s)", f"{result['steady_max_seconds']:.1f}"),
        ("service RSS after start-up (MiB)", f"{result['rss_idle_mb']:.0f}"),
        ("service RSS peak (MiB)", f"{result['rss_peak_mb']:.0f}"),
        ("service start to ready (s)", f"{result['service_start_seconds']:.1f}"),
        ("model load in this process (s)", f"{result['raw_model_load_seconds']:.1f}"),
        ("load average (1, 5, 15 min)", " ".join(f"{v:.1f}" for v in result["load_average"])),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--steady", type=int, default=4, help="products sent at half rate")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="local broker port")
    parser.add_argument("--json", type=Path, default=Path("bench/results/describer.json"))
    args = parser.parse_args()
    config = GeneratorConfig(batch_size=args.batch, description_tokens=args.max_new_tokens)
    products = make_products(args.products, "drain")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    home = Path(tempfile.mkdtemp(prefix="shopstream-bench-"))
    broker = LocalBrokerConfig(
        port=args.port,
        controller_port=args.port + 1,
        home=home,
        jars_home=LocalBrokerConfig().home / "jars",
    )
    try:
        if bootstrap is None:
            local_broker.ensure_jars(broker)
            bootstrap = local_broker.start(broker).bootstrap_servers
        with console.status("loading the generator twice; raw and pipeline rounds; trickle..."):
            result = await measure(bootstrap, config, products, args.rounds, args.steady)
    finally:
        local_broker.stop(broker)  # a no-op when KAFKA_BOOTSTRAP_SERVERS named another broker
        shutil.rmtree(home, ignore_errors=True)
    report(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    console.print(f"written to {args.json}")


if __name__ == "__main__":
    asyncio.run(main())
