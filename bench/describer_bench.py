"""Describer benchmark: zh and en descriptions through a real broker vs the same generator called
directly, in the same run.

1. raw (the baseline): `DescriberModel.generate` on the service's own description prompts, with
   the phrases the service steers each of them away from, in chunks of the service's batch
   size, one worker thread (as the service's InferenceRunner), greedy, the same
   `max_new_tokens`;
2. service: `python -m shopstream_describer` in a subprocess drains the same products (published
   at once onto a ready, warmed-up service); items/s from the first publish to the last
   description read back. The service runs with one generation attempt, so both sides generate
   exactly once per product; what the service adds is Kafka, the grounding and compliance
   checks, the composer's bullets and SEO title and the result events. Raw and service alternate
   over `--rounds` slices, so background load hits both alike;
3. tokens/s: the raw completions re-encoded with the model's own tokenizer (no special tokens, so
   the end-of-sequence token is not counted; at most `max_new_tokens` each; the generator
   returns text, not token ids), so an approximation of the tokens generated. The
   service decodes the same prompts greedily, so its figure is the same token count over its own
   drain time (batches formed by Kafka may pad differently and change a few tokens);
4. latency per product, send (occurred_at) -> description read back: p50 and p95 of the drains
   (everything queued at once) and of `--steady` products sent at half the measured service rate;
5. memory: the service process's resident set after start-up and at its peak (VmRSS, VmHWM),
   and this process's peak (it holds the raw model); on CUDA also the raw model's peak
   allocated GPU memory;
6. start-up: the service's process start to ready and its model load (the
   `model_load_seconds` metric), and the raw model's load in this process. The service starts
   first, then the raw model loads, so neither start-up competes with the other.

Products alternate en and zh (fixed, distinct facts), one locale each. `--random-init` builds a
randomly initialised model of the same architecture from the converted model's config (or
`--config-dir`), with the real tokenizer, saves it to a temporary directory and runs both sides
on it: for a machine (a GPU host) where the real weights cannot travel. Its completions are
gibberish that seldom stops early, so its figures measure **speed only**, never quality.

    uv run --frozen python bench/describer_bench.py [--products 32] [--rounds 2] [--batch 32]
        [--max-new-tokens 64] [--steady 6] [--no-prefix-cache] [--device auto]
        [--random-init [--config-dir DIR]]
    uv run --frozen python bench/describer_bench.py --export-config DIR   # config + tokenizer
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_broker import bench_broker
from rich.console import Console
from rich.table import Table
from sentiment_bench import ResultReader, ServiceProcess, free_port, send

from shopstream.events import ProductUpserted
from shopstream.runtime.admin import ensure_topics
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings
from shopstream_describer.claims import FactIndex
from shopstream_describer.compliance import Lexicons
from shopstream_describer.config import DEFAULT_GENERATOR, GeneratorConfig
from shopstream_describer.facts import ProductFacts
from shopstream_describer.generation import GenerationRequest
from shopstream_describer.pipeline import DescriberPipeline, DescriptionJob, PipelineOptions

PARTITIONS = 2
DEFAULT_PORT = 22_592
LANGUAGES = ("en", "zh")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
"""Files `--export-config` leaves out (and `--random-init` never reads)."""
METRIC = "shopstream_describer_"
console = Console()

KINDS = {
    "en": ("Tote Bag", "Water Bottle", "Rain Jacket", "Desk Lamp", "Running Shoe", "Wool Scarf"),
    "zh": ("托特包", "保温杯", "冲锋衣", "台灯", "跑鞋", "羊毛围巾"),
}
MATERIALS = {
    "en": ("canvas", "stainless steel", "recycled nylon", "aluminium", "mesh", "merino wool"),
    "zh": ("帆布", "不锈钢", "再生尼龙", "铝合金", "网面", "美利奴羊毛"),
}
COLOURS = {
    "en": ("Navy", "Olive", "Black", "Sand", "Red", "Grey", "White"),
    "zh": ("藏青", "橄榄绿", "黑色", "沙色", "红色", "灰色", "白色"),
}
BRANDS = {"en": ("Acme", "Trailhead", "Northwind", "Lumen"), "zh": ("山行", "北风", "流明", "简屋")}
KEYS = {
    "en": ("material", "colour", "weight"),
    "zh": ("材质", "颜色", "重量"),
}


def make_products(count: int, tag: str) -> list[ProductUpserted]:
    """Distinct products (different ids and facts, so none is skipped as unchanged), en and zh
    alternating, each written in its own locale only."""
    products = []
    for index in range(count):
        language = LANGUAGES[index % len(LANGUAGES)]
        kind = KINDS[language][(index // 2) % len(KINDS[language])]
        brand = BRANDS[language][index % len(BRANDS[language])]
        material, colour, weight = KEYS[language]
        title = f"{brand} {kind} {index}" if language == "en" else f"{brand}{kind}{index}号"
        products.append(
            ProductUpserted(
                tenant_id="bench",
                payload={
                    "product_id": f"{tag}-{index}",
                    "title": title,
                    "locale": language,
                    "brand": brand,
                    "category": kind,
                    "attributes": {
                        material: MATERIALS[language][(index // 4) % len(MATERIALS[language])],
                        colour: COLOURS[language][index % len(COLOURS[language])],
                        weight: f"{200 + 10 * index} g",
                    },
                },
            )
        )
    return products


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (with a handful of values, p95 is the largest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def export_config(source: Path, target: Path) -> list[str]:
    """Copy a model directory without its weights: what `--random-init` needs elsewhere."""
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for item in sorted(source.iterdir()):
        if item.is_file() and not item.name.endswith(WEIGHT_SUFFIXES):
            if item.name == "shopstream-model.json":  # the cache record names real weights
                continue
            shutil.copy2(item, target / item.name)
            copied.append(item.name)
    return copied


def config_source(generator: str, config_dir: Path | None) -> Path:
    if config_dir is not None:
        return config_dir
    from shopstream.models.registry import resolve  # noqa: PLC0415 - converts on first use

    location = resolve(generator).path
    if location is None:
        raise SystemExit(f"{generator} is a Hub id: pass --config-dir with its config.json")
    return location


def build_random_model(source: Path, target: Path, seed: int) -> str:
    """A model of `source`'s architecture with random weights (bf16) and its real tokenizer,
    saved as a directory the registry loads like any local model."""
    import torch  # noqa: PLC0415
    from transformers import (  # noqa: PLC0415
        AutoConfig,
        AutoModelForCausalLM,
        AutoTokenizer,
        GenerationConfig,
    )

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(source)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)  # type: ignore[no-untyped-call]
    with contextlib.suppress(OSError):  # without generation_config.json: the defaults
        model.generation_config = GenerationConfig.from_pretrained(source)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    del model
    return f"{config.model_type}, {parameters / 1e6:.0f}M parameters, random (seed {seed})"


@dataclass
class RawRun:
    seconds: float
    tokens: dict[str, int] = field(default_factory=dict)
    """Generated tokens per product event id."""
    samples: dict[str, str] = field(default_factory=dict)
    """One completion per language."""


class RawGenerator:
    """The generator called directly on the prompts the service would build."""

    def __init__(self, config: GeneratorConfig) -> None:
        from transformers import AutoTokenizer  # noqa: PLC0415 - loads torch

        from shopstream.models.registry import resolve  # noqa: PLC0415
        from shopstream_describer.model import DescriberModel  # noqa: PLC0415

        self.config = config
        self.model = DescriberModel(config)
        self.pipeline = DescriberPipeline(self.model, PipelineOptions(max_attempts=1))
        self.lexicon = Lexicons().default
        self.worker = ThreadPoolExecutor(max_workers=1)
        began = time.perf_counter()
        report = self.model.load()
        self.load_seconds = time.perf_counter() - began
        self.device = str(report.device)
        self.dtype = str(report.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(resolve(str(config.generator)).location)

    def _generate(self, products: list[ProductUpserted]) -> RawRun:
        jobs = [
            DescriptionJob(
                ProductFacts.from_payload(event.payload), event.payload.locale, self.lexicon
            )
            for event in products
        ]
        prompts = [self.pipeline.description_prompt(job) for job in jobs]
        # The phrases the service steers each prompt's decoding away from (unless
        # MODEL__AVOID_UNSUPPORTED_TERMS is off): the same logits processors on both sides.
        avoid = [
            self.pipeline.avoid(job.lexicon, FactIndex.of([job.facts]), job.locale) for job in jobs
        ]
        outputs: list[str] = []
        began = time.perf_counter()
        for start in range(0, len(prompts), self.config.batch_size):
            chunk = slice(start, start + self.config.batch_size)
            outputs += self.model.generate(
                GenerationRequest(
                    prompts[chunk],
                    attempt=1,
                    max_new_tokens=self.config.description_tokens,
                    avoid=avoid[chunk],
                )
            )
        run = RawRun(time.perf_counter() - began)
        for event, job, text in zip(products, jobs, outputs, strict=True):
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            # Re-encoding can split what was one token (random weights' byte fragments).
            run.tokens[str(event.event_id)] = min(len(ids), self.config.description_tokens)
            run.samples.setdefault(job.locale, text)
        return run

    async def generate(self, products: list[ProductUpserted]) -> RawRun:
        return await asyncio.get_running_loop().run_in_executor(
            self.worker, self._generate, products
        )

    def peak_gpu_mib(self) -> float | None:
        import torch  # noqa: PLC0415

        if not self.device.startswith("cuda"):
            return None
        return float(torch.cuda.max_memory_allocated()) / 2**20

    def close(self) -> None:
        self.worker.shutdown()
        self.model.unload()


class DescriptionReader(ResultReader):
    """Also keeps each description's locale, path and model id, by the product event's id."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic)
        self.documents: dict[str, dict[str, Any]] = {}

    async def until(self, wanted: set[str], limit: float) -> None:
        deadline = time.monotonic() + limit
        while not wanted <= self.arrived.keys():
            if time.monotonic() > deadline:
                missing = len(wanted - self.arrived.keys())
                raise TimeoutError(f"{missing} descriptions still missing")
            batches = await self.consumer.getmany(timeout_ms=50, max_records=5_000)
            now = datetime.now(UTC)
            for records in batches.values():
                for record in records:
                    document = json.loads(record.value or b"{}")
                    cause = document.get("causation_id")
                    self.arrived.setdefault(cause, now)
                    self.documents.setdefault(cause, document)


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
            "DESCRIBER_MODEL__GENERATOR": str(config.generator),
            "DESCRIBER_MODEL__LANGUAGES": json.dumps(config.languages),
            "DESCRIBER_MODEL__DEVICE": config.device,
            "DESCRIBER_MODEL__BATCH_SIZE": str(config.batch_size),
            "DESCRIBER_MODEL__SHARE_PROMPT_PREFIX": json.dumps(config.share_prompt_prefix),
            "DESCRIBER_MODEL__MAX_ATTEMPTS": "1",
            "DESCRIBER_MODEL__DESCRIPTION_TOKENS": str(config.description_tokens),
            "DESCRIBER_LOG_LEVEL": "WARNING",
        }
        self.spawned = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-m", "shopstream_describer"], env=env)


def _latencies(reader: DescriptionReader, sent: dict[str, datetime]) -> list[float]:
    return [(reader.arrived[event_id] - at).total_seconds() for event_id, at in sent.items()]


@dataclass
class Drain:
    """The alternating rounds: raw and service over the same products."""

    raw_seconds: float = 0.0
    service_seconds: float = 0.0
    tokens: dict[str, int] = field(default_factory=dict)
    samples: dict[str, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)


async def alternate(
    raw: RawGenerator,
    products: list[ProductUpserted],
    rounds: int,
    *,
    bootstrap: str,
    topic: str,
    reader: DescriptionReader,
) -> Drain:
    """Each slice generated raw, then drained through the service (from the first publish to
    the last description read back; the reader reads while the producer sends)."""
    drain = Drain()
    size = -(-len(products) // rounds)
    for part in (products[start : start + size] for start in range(0, len(products), size)):
        run = await raw.generate(part)
        drain.raw_seconds += run.seconds
        drain.tokens |= run.tokens
        drain.samples = run.samples | drain.samples
        began = time.perf_counter()
        reading = asyncio.create_task(reader.until({str(e.event_id) for e in part}, 3_600))
        sent = await send(bootstrap, topic, part)
        await reading
        drain.service_seconds += time.perf_counter() - began
        drain.latencies += _latencies(reader, sent)
    return drain


async def trickle(
    bootstrap: str, topic: str, reader: DescriptionReader, count: int, rate: float
) -> list[float]:
    """End-to-end seconds of `count` fresh products sent at `rate` per second."""
    products = make_products(count, f"steady-{uuid.uuid4().hex[:6]}")
    wanted = {str(e.event_id) for e in products}
    reading = asyncio.create_task(reader.until(wanted, count / rate + 1_800))
    sent = await send(bootstrap, topic, products, rate=rate)
    await reading
    return _latencies(reader, sent)


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
    reader = DescriptionReader(bootstrap, topics.descriptions)
    raw: RawGenerator | None = None
    try:
        # The service starts alone, then the raw model loads: neither start-up competes.
        start_seconds = await service.wait_ready(limit=1_800)
        started = {
            "service_start_seconds": start_seconds,
            "service_model_load_seconds": service.metric(METRIC + "model_load_seconds"),
            "rss_idle_mb": service.memory_kib("VmRSS") / 1024,
        }
        raw = await asyncio.to_thread(RawGenerator, config)
        await reader.start()
        warm = make_products(config.batch_size, f"warm-{tag}")
        await raw.generate(warm)
        await send(bootstrap, topics.products, warm)
        await reader.until({str(e.event_id) for e in warm}, 1_800)

        watched = (METRIC + "inference_seconds_sum", METRIC + "batch_size_count")
        before = {name: service.metric(name) for name in watched}
        drain = await alternate(
            raw, products, rounds, bootstrap=bootstrap, topic=topics.products, reader=reader
        )
        inference, batches = (service.metric(name) - before[name] for name in watched)
        rate = len(products) / drain.service_seconds / 2
        steady_latencies = await trickle(bootstrap, topics.products, reader, steady, rate)
        peaks = {
            "rss_peak_mb": service.memory_kib("VmHWM") / 1024,
            "raw_gpu_peak_allocated_mb": raw.peak_gpu_mib(),
        }
    finally:
        await reader.stop()
        exit_code = service.stop()
        if raw is not None:
            raw.close()
    documents = [reader.documents[str(event.event_id)] for event in products]
    paths = Counter(document["payload"]["quality"]["path"] for document in documents)
    total_tokens = sum(drain.tokens.values())
    per_language = {
        language: [drain.tokens[str(e.event_id)] for e in products if e.payload.locale == language]
        for language in LANGUAGES
    }
    items = len(products)
    return {
        "generator": config.generator,
        "model_id": documents[0]["lineage"]["model_id"],
        "device": raw.device,
        "dtype": raw.dtype,
        "products": items,
        "products_per_language": {k: len(v) for k, v in per_language.items()},
        "rounds": rounds,
        "batch": config.batch_size,
        "prefix_cache": config.share_prompt_prefix,
        "max_new_tokens": config.description_tokens,
        "token_count": "raw completions re-encoded with the model's tokenizer, no special tokens",
        "generated_tokens": total_tokens,
        "tokens_per_item": {k: sum(v) / len(v) for k, v in per_language.items() if v},
        "raw_seconds": drain.raw_seconds,
        "raw_items_per_second": items / drain.raw_seconds,
        "raw_tokens_per_second": total_tokens / drain.raw_seconds,
        "raw_seconds_per_item": drain.raw_seconds / items,
        "raw_model_load_seconds": raw.load_seconds,
        "service_seconds": drain.service_seconds,
        "service_items_per_second": items / drain.service_seconds,
        "service_tokens_per_second": total_tokens / drain.service_seconds,
        "service_seconds_per_item": drain.service_seconds / items,
        "ratio": drain.raw_seconds / drain.service_seconds,
        "model_busy_share": inference / drain.service_seconds,
        "mean_batch_size": items / batches if batches else float("nan"),
        "service_paths": dict(sorted(paths.items())),
        **started,
        "drain_p50_seconds": percentile(drain.latencies, 0.50),
        "drain_p95_seconds": percentile(drain.latencies, 0.95),
        "steady_rate": rate,
        "steady_items": steady,
        "steady_p50_seconds": percentile(steady_latencies, 0.50),
        "steady_p95_seconds": percentile(steady_latencies, 0.95),
        **peaks,
        "bench_process_rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "service_exit_code": exit_code,
        "load_average": os.getloadavg(),
        "samples": drain.samples,
    }


def _pair(result: dict[str, Any], name: str, spec: str) -> tuple[str, str]:
    """The raw and the service figure of `name` (`raw_<name>`, `service_<name>`)."""
    raw, service = (format(result[f"{side}_{name}"], spec) for side in ("raw", "service"))
    return raw, service


def report(result: dict[str, Any]) -> None:
    r = result
    per_language = r["products_per_language"]
    random = " (RANDOM WEIGHTS: speed only)" if r.get("random_init") else ""
    title = (
        f"describer, {r['generator']} on {r['device']} ({r['dtype']}){random}\n"
        f"{per_language['en']} en + {per_language['zh']} zh products in {r['rounds']} "
        f"alternating rounds, batch {r['batch']}, {r['max_new_tokens']} new tokens, "
        f"greedy, 1 attempt, prefix cache {'on' if r.get('prefix_cache', True) else 'off'}"
    )
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("raw batched generate (baseline)", justify="right")
    table.add_column("service through Kafka", justify="right")
    tokens = " / ".join(f"{r['tokens_per_item'].get(k, 0):.0f}" for k in LANGUAGES)
    paths = ", ".join(f"{name} {count}" for name, count in r["service_paths"].items())
    gpu = r["raw_gpu_peak_allocated_mb"]
    rows = [
        ("items/s", *_pair(r, "items_per_second", ".3f")),
        ("tokens/s (raw outputs re-tokenised)", *_pair(r, "tokens_per_second", ".1f")),
        ("seconds per item", *_pair(r, "seconds_per_item", ".2f")),
        ("service / raw (target >= 0.90)", "(baseline)", f"{r['ratio']:.2f}"),
        ("generated tokens per item, en / zh", tokens, "(same prompts)"),
        ("model busy share, mean batch (drain)", "",
         f"{r['model_busy_share']:.0%}, {r['mean_batch_size']:.1f}"),
        ("paths of the published texts", "", paths),
        ("latency p50 / p95, drain: all queued (s)", "",
         f"{r['drain_p50_seconds']:.1f} / {r['drain_p95_seconds']:.1f}"),
        (f"latency p50 / p95 @ {r['steady_rate']:.3f}/s, {r['steady_items']} items (s)", "",
         f"{r['steady_p50_seconds']:.1f} / {r['steady_p95_seconds']:.1f}"),
        ("RSS after start-up / peak (MiB)", f"peak {r['bench_process_rss_peak_mb']:.0f} (bench)",
         f"{r['rss_idle_mb']:.0f} / {r['rss_peak_mb']:.0f}"),
        ("GPU memory, peak allocated (MiB)", "-" if gpu is None else f"{gpu:.0f}", ""),
        ("process start to ready (s)", "", f"{r['service_start_seconds']:.1f}"),
        ("model load (s)", *_pair(r, "model_load_seconds", ".1f")),
    ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    load = " ".join(f"{value:.1f}" for value in r["load_average"])
    table.caption = f"load average (1, 5, 15 min) at the end: {load}"
    console.print(table)
    for locale, text in sorted(r["samples"].items()):
        console.print(f"[dim]raw {locale} sample:[/dim] {text[:160]!r}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=32, help="en and zh alternating")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument(
        "--no-prefix-cache",
        action="store_true",
        help="run every prompt whole, as before prefix caching (both sides)",
    )
    parser.add_argument("--steady", type=int, default=6, help="products sent at half the rate")
    parser.add_argument("--generator", default=DEFAULT_GENERATOR, help="one that writes en and zh")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="random weights of the generator's architecture, real tokenizer: speed only",
    )
    parser.add_argument(
        "--config-dir",
        type=Path,
        help="config.json and tokenizer for --random-init (default: the converted generator's)",
    )
    parser.add_argument("--seed", type=int, default=7, help="of the random weights")
    parser.add_argument(
        "--export-config",
        type=Path,
        metavar="DIR",
        help="copy the generator's config and tokenizer (no weights) to DIR and exit",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="local broker port")
    parser.add_argument("--json", type=Path, default=Path("bench/results/describer.json"))
    args = parser.parse_args()
    if args.rounds < 1 or args.products < args.rounds or args.steady < 1:
        parser.error("need --products >= --rounds >= 1 and --steady >= 1")
    return args


async def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    generator, random_model = args.generator, None
    if args.random_init:
        source = config_source(args.generator, args.config_dir)
        with console.status(f"building a random model from {source}..."):
            random_model = build_random_model(source, home / "random-model", args.seed)
        generator = str(home / "random-model")
        console.print(f"[yellow]random weights[/yellow] ({random_model}): speed only")
    config = GeneratorConfig(
        generator=generator,
        languages=list(LANGUAGES),
        device=args.device,
        batch_size=args.batch,
        description_tokens=args.max_new_tokens,
        share_prompt_prefix=not args.no_prefix_cache,
    )
    products = make_products(args.products, "drain")
    with (
        bench_broker(args.port, home) as bootstrap,
        console.status("service start-up, raw model load, alternating rounds, trickle..."),
    ):
        result = await measure(bootstrap, config, products, args.rounds, args.steady)
    suffix = " (random weights)" if random_model else ""
    return result | {"random_init": random_model, "generator": args.generator + suffix}


async def main() -> None:
    args = parse_args()
    if args.export_config is not None:
        source = config_source(args.generator, args.config_dir)
        copied = export_config(source, args.export_config)
        console.print(f"{', '.join(copied)} copied from {source} to {args.export_config}")
        return
    home = Path(tempfile.mkdtemp(prefix="shopstream-bench-"))
    try:
        result = await run(args, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    report(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    console.print(f"written to {args.json}")


if __name__ == "__main__":
    asyncio.run(main())
