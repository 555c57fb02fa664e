"""Score a labelled review file with the service's own model and report quality and speed.

Which rows: when the file is one the head was trained on (its sha256 is in the head's
metadata), only the rows that training held out, recomputed with the recorded seed and
fraction; any other file is used whole. ``limit`` then takes the first rows of a seeded
shuffle, so a small limit is still a mix of labels.

What is measured: on files whose labels are only positive/negative, ``accuracy`` is that of the
positive-vs-negative decision (P(positive) >= 0.5) and the share labelled neutral (band or
stars-against-text, with the file's ratings) is reported beside it; on files with neutral rows,
``accuracy`` is that of the three-way label. Throughput is reviews per second through
``SentimentModel.predict_batch`` in batches of ``batch_size``, aspects included unless turned
off, on however many threads torch was given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopstream_sentiment.config import SentimentModelConfig
from shopstream_sentiment.datasets import (
    LabelledReview,
    file_sha256,
    read_reviews,
    shuffled,
    split_held_out,
)
from shopstream_sentiment.head import SentimentHead
from shopstream_sentiment.metrics import classification_report
from shopstream_sentiment.predictions import ReviewText, SentimentPrediction

if TYPE_CHECKING:
    from shopstream_sentiment.model import SentimentModel


@dataclass(frozen=True)
class RowSelection:
    reviews: list[LabelledReview]
    held_out: bool
    """True when only the rows held out from the head's training were kept."""


def select_rows(
    path: Path, head_metadata: dict[str, Any] | None, limit: int | None
) -> RowSelection:
    reviews = read_reviews(path)
    digest = file_sha256(path)
    split = (head_metadata or {}).get("split", {})
    trained_on = {item.get("sha256") for item in (head_metadata or {}).get("data", [])}
    seed = int(split.get("seed", 13))
    if digest in trained_on:
        _, rows = split_held_out(reviews, seed, float(split["test_fraction"]))
        held_out = True
    else:
        rows = shuffled(reviews, seed)
        held_out = False
    if limit is not None:
        rows = rows[:limit]
    return RowSelection(rows, held_out)


def head_metadata(config: SentimentModelConfig) -> dict[str, Any] | None:
    if config.backend != "encoder_head":
        return None
    return SentimentHead.load(config.head).metadata


def evaluate_file(
    path: Path,
    config: SentimentModelConfig,
    *,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Load the model, score the selected rows in batches and return the report as a dict.

    `progress(done, total)` is called after each batch with the rows scored so far."""
    from shopstream_sentiment.model import SentimentModel  # noqa: PLC0415  loads torch

    selection = select_rows(path, head_metadata(config), limit)
    reviews = selection.reviews
    if not reviews:
        raise ValueError(f"{path}: no rows to evaluate")
    model = SentimentModel(config)
    model.load()
    predictions: list[SentimentPrediction] = []
    inference_seconds = 0.0
    for start in range(0, len(reviews), config.batch_size):
        batch = [
            ReviewText(text=review.text, rating=review.rating)
            for review in reviews[start : start + config.batch_size]
        ]
        began = time.perf_counter()
        predictions += model.predict_batch(batch)
        inference_seconds += time.perf_counter() - began
        if progress is not None:
            progress(len(predictions), len(reviews))
    model.unload()
    return summarise(
        path,
        selection,
        predictions,
        inference_seconds=inference_seconds,
        config=config,
        model=model,
    )


def summarise(
    path: Path,
    selection: RowSelection,
    predictions: list[SentimentPrediction],
    *,
    inference_seconds: float,
    config: SentimentModelConfig,
    model: SentimentModel,
) -> dict[str, Any]:
    reviews = selection.reviews
    truth = [review.label for review in reviews]
    labels = [prediction.label for prediction in predictions]
    three_way = "neutral" in truth
    if three_way:
        report = classification_report(truth, labels, ("positive", "neutral", "negative"))
    else:
        decided = ["positive" if p.score >= 0.5 else "negative" for p in predictions]
        report = classification_report(truth, decided, ("positive", "negative"))
    label_confusion = classification_report(truth, labels, ("positive", "neutral", "negative"))
    return {
        "accuracy": round(report.accuracy, 4),
        "macro_f1": round(report.macro_f1, 4),
        "task": "three-way label" if three_way else "positive vs negative (P(positive) >= 0.5)",
        "neutral_share": round(labels.count("neutral") / len(labels), 4),
        "per_class": {
            label: {
                "precision": round(scores.precision, 4),
                "recall": round(scores.recall, 4),
                "f1": round(scores.f1, 4),
                "support": scores.support,
            }
            for label, scores in report.per_class.items()
        },
        "confusion": report.confusion,
        "label_confusion": label_confusion.confusion,
        "rows": len(reviews),
        "held_out_rows_only": selection.held_out,
        "file": str(path),
        "sha256": file_sha256(path),
        "throughput_texts_per_second": round(len(reviews) / inference_seconds, 2),
        "inference_seconds": round(inference_seconds, 2),
        "batch_size": config.batch_size,
        "aspects": config.aspects_enabled,
        "aspect_findings_per_review": round(
            sum(len(p.aspects) for p in predictions) / len(predictions), 3
        ),
        "model_id": model.model_id,
        "model_revision": model.model_revision,
        "neutral_band": model.rule.neutral_band,
    }
