"""Responder benchmark: the service through a real broker vs raw batched retrieval, and the index.

1. raw: ``ResponderModel.predict_batch`` (encode the questions, search the shop's index, answer)
   in chunks of the service's batch size, in this process on one worker thread like the
   service's, over an index built from the same knowledge;
2. pipeline: ``python -m shopstream_responder`` in a subprocess first reads the knowledge topic
   (the demo shop's zh + en policies and FAQs), then drains the same questions published at
   once; questions/s from the first publish to the last answer read back. Raw and pipeline
   alternate over ``--rounds`` slices, so background load hits both sides alike;
3. latency: a steady load at half the pipeline's rate, ``occurred_at`` at send -> answer read
   back, p50 and p99;
4. index: memory, build time and search time at 1k, 10k and 100k passages. These passages are
   synthetic (random unit vectors of the default's size, 768-d: e5 and MiniLM side by side,
   and ~300 characters of text each, 10 passages per document), so the figures isolate the
   index from the encoders (whose passages/s is about the raw questions/s above: a passage
   and a question are each one input per encoder).

    uv run python bench/responder_bench.py [--questions 600] [--rounds 3] [--steady-seconds 30]
        [--sizes 1000 10000 100000] [--skip-broker] [--port 23592] [--json OUT]

A local broker is started on ``--port`` (and the next port) unless ``KAFKA_BOOTSTRAP_SERVERS``
names one.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from bench_broker import bench_broker
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.table import Table
from sentiment_bench import (
    ResultReader,
    ServiceProcess,
    alternate_rounds,
    free_port,
    load_average_row,
    metric_table,
    send,
    service_rows,
    steady_latencies_ms,
)

from shopstream.events import KnowledgeKind, KnowledgeUpserted, QuestionAsked
from shopstream.runtime.admin import ensure_topics
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings
from shopstream_responder.answering import Question, search
from shopstream_responder.config import AnsweringConfig, ResponderSettings
from shopstream_responder.demo import demo_shop
from shopstream_responder.follower import KnowledgeChanges
from shopstream_responder.handlers import question_of
from shopstream_responder.intents import IntentClassifier, IntentRules
from shopstream_responder.knowledge import (
    Chunk,
    Document,
    DocumentKey,
    KnowledgeIndex,
    PassageVectors,
    Source,
    TenantSnapshot,
)
from shopstream_responder.metrics import ResponderMetrics
from shopstream_responder.model import ResponderModel

PARTITIONS = 3
DEFAULT_PORT = 23592
console = Console()

# The default responder stores each passage as e5 (384-d) and MiniLM (384-d) side by side.
DIM = 384 * (2 if ResponderSettings().model.english_encoder else 1)
PASSAGES_PER_DOC = 10
TEXT = "Returns are free within thirty days of delivery for unused items in their box. " * 4


def unit_rows(rng: np.random.Generator, rows: int) -> np.ndarray:
    matrix = rng.standard_normal((rows, DIM)).astype(np.float32)
    normalised: np.ndarray = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return normalised


def measure_index(passages: int, rng: np.random.Generator) -> dict[str, Any]:
    documents = [
        Document(
            key=DocumentKey("bench-shop", Source.KNOWLEDGE, f"doc-{number}"),
            title=f"Article {number}",
            passages=tuple(
                Chunk(f"Question {number}-{row}?", f"{TEXT} ({number}-{row})")
                for row in range(PASSAGES_PER_DOC)
            ),
            kind=KnowledgeKind.FAQ,
            locale="en",
        )
        for number in range(passages // PASSAGES_PER_DOC)
    ]
    vectors = [
        PassageVectors(unit_rows(rng, PASSAGES_PER_DOC), unit_rows(rng, PASSAGES_PER_DOC))
        for _ in documents
    ]
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    index = KnowledgeIndex()
    for document, matrix in zip(documents, vectors, strict=True):
        index.upsert(document, matrix)
    upsert_seconds = time.perf_counter() - started
    started = time.perf_counter()
    snapshot = index.snapshot("bench-shop")
    snapshot_seconds = time.perf_counter() - started
    total_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert snapshot is not None
    config = AnsweringConfig()
    timings = []
    for _ in range(50):
        question = unit_rows(rng, 1)[0]
        began = time.perf_counter()
        search(
            snapshot,
            question,
            product_id=None,
            language="en",
            topic=None,
            config=config,
            limit=11,
        )
        timings.append(time.perf_counter() - began)
    # Texts were built before tracing started; the index references them (the follower hands
    # documents over and keeps no copy). Vectors are traced: the snapshot's matrices hold them.
    held = sum(len(chunk.text) + len(chunk.heading) for d in documents for chunk in d.passages)
    vector_bytes = index.stats().vector_bytes
    per_10k = 10_000 / passages
    return {
        "passages": passages,
        "upsert_seconds": upsert_seconds,
        "snapshot_seconds": snapshot_seconds,
        "search_ms_p50": statistics.median(timings) * 1000,
        "search_ms_max": max(timings) * 1000,
        "vector_bytes": vector_bytes,
        "index_bytes_traced": total_bytes,
        "text_bytes": held,
        "mb_per_10k_passages": (total_bytes + held) * per_10k / 1e6,
    }


def knowledge_events() -> list[KnowledgeUpserted]:
    shop = demo_shop()
    return [
        KnowledgeUpserted(tenant_id=shop["tenant_id"], payload=doc) for doc in shop["knowledge"]
    ]


def make_questions(count: int, tag: str) -> list[QuestionAsked]:
    """The demo shop's questions (zh and en, one hand-off, one injection attempt), cycled."""
    shop = demo_shop()
    asked = shop["questions"]
    return [
        QuestionAsked(
            tenant_id=shop["tenant_id"],
            payload={"conversation_id": f"{tag}-{number}", **asked[number % len(asked)]},
        )
        for number in range(count)
    ]


class RawResponder:
    """The model called directly over an index of the same knowledge: no Kafka, no runtime."""

    def __init__(self, settings: ResponderSettings) -> None:
        rules = IntentRules.from_file(settings.intent_rules)
        self.batch = settings.batch.max_records
        self.model = ResponderModel(settings.model, settings.answering, rules)
        self.index = KnowledgeIndex(topic_of=IntentClassifier(rules).rule_intent)
        # One worker thread, as the service's inference runner calls the model (torch's CPU
        # speed depends on the calling thread).
        self.worker = ThreadPoolExecutor(max_workers=1)
        began = time.perf_counter()
        self.model.load()
        self.load_seconds = time.perf_counter() - began
        # The follower's own record-to-document code, so both sides index the same passages.
        changes = KnowledgeChanges(settings, ResponderMetrics(CollectorRegistry()))
        documents = [
            change
            for event in knowledge_events()
            if isinstance(
                change := changes.change_of(settings.topics.knowledge, None, event.to_json()),
                Document,
            )
        ]
        for document, vectors in zip(documents, self.model.embed_documents(documents), strict=True):
            self.index.upsert(document, vectors)

    def _answer(self, events: list[QuestionAsked]) -> float:
        began = time.perf_counter()
        for start in range(0, len(events), self.batch):
            chunk = [question_of(event) for event in events[start : start + self.batch]]
            inputs: list[tuple[Question, TenantSnapshot | None]] = [
                (question, self.index.snapshot(question.tenant_id)) for question in chunk
            ]
            self.model.predict_batch(inputs)
        return time.perf_counter() - began

    async def answer(self, events: list[QuestionAsked]) -> float:
        """Seconds to answer `events` in chunks of the service's batch size."""
        return await asyncio.get_running_loop().run_in_executor(self.worker, self._answer, events)

    def close(self) -> None:
        self.worker.shutdown()
        self.model.unload()


class ResponderProcess(ServiceProcess):
    """`python -m shopstream_responder` on the bench's topics."""

    def __init__(self, bootstrap: str, topics: TopicSettings, batch: int) -> None:
        self.http_port = free_port()
        env = {
            **os.environ,
            "RESPONDER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "RESPONDER_TOPICS__KNOWLEDGE": topics.knowledge,
            "RESPONDER_TOPICS__PRODUCTS": topics.products,
            "RESPONDER_TOPICS__QUESTIONS": topics.questions,
            "RESPONDER_TOPICS__ANSWERS": topics.answers,
            "RESPONDER_TOPICS__PARTITIONS": str(PARTITIONS),
            "RESPONDER_GROUP_ID": topics.questions + ".group",
            "RESPONDER_HTTP_PORT": str(self.http_port),
            "RESPONDER_BATCH__MAX_RECORDS": str(batch),
            "RESPONDER_LOG_LEVEL": "WARNING",
        }
        self.spawned = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-m", "shopstream_responder"], env=env)


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure_broker(
    bootstrap: str, questions: list[QuestionAsked], rounds: int, steady_seconds: float
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    topics = TopicSettings(
        knowledge=f"bench.responder.{tag}.knowledge",
        products=f"bench.responder.{tag}.products",
        questions=f"bench.responder.{tag}.questions",
        answers=f"bench.responder.{tag}.answers",
        partitions=PARTITIONS,
    )
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    await ensure_topics(kafka, topics.specs())
    await send(bootstrap, topics.knowledge, knowledge_events())
    settings = ResponderSettings()
    batch = settings.batch.max_records
    # The service loads its model and reads the knowledge while this process builds the raw
    # side's copy.
    service = ResponderProcess(bootstrap, topics, batch)
    reader = ResultReader(bootstrap, topics.answers)
    raw: RawResponder | None = None
    try:
        raw = await asyncio.to_thread(RawResponder, settings)
        start_seconds = await service.wait_ready()
        idle_rss = service.memory_kib("VmRSS")
        await reader.start()
        warm = make_questions(batch, f"warm-{tag}")
        await raw.answer(warm)
        await send(bootstrap, topics.questions, warm)
        await reader.until({str(e.event_id) for e in warm}, 300)

        watched = (
            "shopstream_responder_inference_seconds_sum",
            "shopstream_responder_batch_size_count",
        )
        before = {name: service.metric(name) for name in watched}
        raw_seconds, pipeline_seconds = await alternate_rounds(
            raw.answer,
            questions,
            rounds,
            bootstrap=bootstrap,
            topic=topics.questions,
            reader=reader,
        )
        inference, batches = (service.metric(name) - before[name] for name in watched)
        pipeline_rate = len(questions) / pipeline_seconds

        rate = pipeline_rate / 2
        steady = make_questions(max(20, int(rate * steady_seconds)), f"steady-{tag}")
        latencies = await steady_latencies_ms(bootstrap, topics.questions, reader, steady, rate)
        peak_rss = service.memory_kib("VmHWM")
    finally:
        await reader.stop()
        exit_code = service.stop()
        if raw is not None:
            raw.close()
    return {
        "questions": len(questions),
        "rounds": rounds,
        "batch": batch,
        "raw_seconds": raw_seconds,
        "raw_questions_per_second": len(questions) / raw_seconds,
        "raw_model_load_seconds": raw.load_seconds,
        "pipeline_seconds": pipeline_seconds,
        "pipeline_questions_per_second": pipeline_rate,
        "ratio": raw_seconds / pipeline_seconds,
        "model_busy_share": inference / pipeline_seconds,
        "mean_batch_size": len(questions) / batches if batches else float("nan"),
        "service_start_seconds": start_seconds,
        "steady_rate": rate,
        "steady_questions": len(steady),
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 0.99),
        "rss_idle_mb": idle_rss / 1024,
        "rss_peak_mb": peak_rss / 1024,
        "service_exit_code": exit_code,
        "load_average": os.getloadavg(),
    }


def report_broker(result: dict[str, Any]) -> None:
    title = (
        f"responder, {result['questions']} questions (zh + en) in {result['rounds']} "
        f"alternating rounds, batch {result['batch']}"
    )
    rows = [
        ("raw predict_batch, questions/s", f"{result['raw_questions_per_second']:.1f}"),
        ("service through Kafka, questions/s", f"{result['pipeline_questions_per_second']:.1f}"),
        ("service / raw (target >= 0.90)", f"{result['ratio']:.2f}"),
        *service_rows(result),
        load_average_row(result),
    ]
    console.print(metric_table(title, rows))


def report_index(rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"responder index (synthetic {DIM}-d passages, one tenant)")
    for column in (
        "passages", "upserts s", "snapshot s", "search p50 ms", "search max ms",
        "vectors MB", "index MB (traced)", "MB per 10k passages",
    ):  # fmt: skip
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            f"{row['passages']:,}",
            f"{row['upsert_seconds']:.3f}",
            f"{row['snapshot_seconds']:.3f}",
            f"{row['search_ms_p50']:.2f}",
            f"{row['search_ms_max']:.2f}",
            f"{row['vector_bytes'] / 1e6:.1f}",
            f"{row['index_bytes_traced'] / 1e6:.1f}",
            f"{row['mb_per_10k_passages']:.1f}",
        )
    console.print(table)


async def run_broker(args: argparse.Namespace) -> dict[str, Any]:
    with (
        bench_broker(args.port) as bootstrap,
        console.status("loading models; raw and service rounds; then steady load..."),
    ):
        return await measure_broker(
            bootstrap,
            make_questions(args.questions, "drain"),
            args.rounds,
            args.steady_seconds,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steady-seconds", type=float, default=30.0)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 100_000])
    parser.add_argument("--skip-broker", action="store_true", help="index figures only")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="local broker port")
    parser.add_argument("--json", type=Path, default=Path("bench/results/responder.json"))
    args = parser.parse_args()
    result: dict[str, Any] = {}
    if not args.skip_broker:
        result["broker"] = asyncio.run(run_broker(args))
        report_broker(result["broker"])
    rng = np.random.default_rng(7)
    result["index"] = [measure_index(size, rng) for size in args.sizes]
    result["index_load_average"] = os.getloadavg()
    report_index(result["index"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    console.print(f"written to {args.json}")


if __name__ == "__main__":
    main()
