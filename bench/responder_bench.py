"""Responder index benchmark: memory, build time and search time at 1k, 10k and 100k passages.

The passages are synthetic (random 384-d unit vectors, the default encoder's size, and ~300
characters of text each, 10 passages per document), so the figures isolate the index from the
encoder: what a replica holds per passage, how long a snapshot rebuild after a change takes, and
how long one question's search takes. Encoder throughput is what `shopstream eval responder`
prints. The broker-path part of the issue's benchmark (questions/s through Kafka vs raw batched
retrieval, p50/p99) is not written yet.

    uv run python bench/responder_bench.py [--sizes 1000 10000 100000] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from shopstream.events import KnowledgeKind
from shopstream_responder.answering import QuestionVectors, search
from shopstream_responder.config import AnsweringConfig
from shopstream_responder.knowledge import (
    Chunk,
    Document,
    DocumentKey,
    KnowledgeIndex,
    PassageVectors,
    Source,
)

DIM = 384
PASSAGES_PER_DOC = 10
TEXT = "Returns are free within thirty days of delivery for unused items in their box. " * 4


def unit_rows(rng: np.random.Generator, rows: int) -> np.ndarray:
    matrix = rng.standard_normal((rows, DIM)).astype(np.float32)
    normalised: np.ndarray = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return normalised


def measure(passages: int, rng: np.random.Generator) -> dict[str, Any]:
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
        question = QuestionVectors(unit_rows(rng, 1)[0], unit_rows(rng, 1)[0])
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    rows = [measure(size, rng) for size in args.sizes]
    table = Table(title="responder index (synthetic 384-d passages, one tenant)")
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
    Console().print(table)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
