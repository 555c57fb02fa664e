"""What the fine-tuned sentiment head costs to serve, against the frozen encoder.

    uv run python bench/sentiment_head_cost.py [--reviews 384] [--rounds 3] [--batch 64]

Raw ``predict_batch`` throughput of the shipped head in four configurations, all loaded in one
process and run in alternating rounds, so background load affects each alike:

1. frozen encoder: the shipped head with its tuned layers left out (what a frozen-encoder head
   of the same shape costs; its polarity is not what the service would say);
2. fine-tuned, aspects matched on the original top layers (the default, one extra pass of the
   tuned layers' depth in frozen weights);
3. fine-tuned, aspects matched on the tuned vectors (``aspect_vectors="tuned"``);
4. fine-tuned, aspects off.

Reviews are the development reviews (zh and en, shuffled with a fixed seed); it prints reviews/s,
load seconds and the load average.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import tempfile
import time
from pathlib import Path

from shopstream_sentiment.config import DEFAULT_HEAD, SentimentModelConfig
from shopstream_sentiment.head import SentimentHead
from shopstream_sentiment.model import SentimentModel
from shopstream_sentiment.predictions import ReviewText

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sentiment"


def reviews(count: int) -> list[str]:
    texts: list[str] = []
    for name in ("reviews_zh.csv", "reviews_en.csv"):
        with (DATA / name).open(encoding="utf-8") as handle:
            texts += [row["text"] for row in csv.DictReader(handle)]
    random.Random(1).shuffle(texts)
    return texts[:count]


def frozen_copy(directory: Path) -> Path:
    """The shipped head without its tuned layers, saved to ``directory``."""
    head = SentimentHead.load(DEFAULT_HEAD)
    if not head.encoder_weights:
        raise SystemExit(f"{DEFAULT_HEAD} ships no fine-tuned layers; nothing to compare")
    head.encoder_weights = {}
    return head.save(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reviews", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    texts = reviews(args.reviews)
    with tempfile.TemporaryDirectory() as scratch:
        configs = {
            "frozen encoder (baseline)": SentimentModelConfig(head=frozen_copy(Path(scratch))),
            "fine-tuned, aspects on original top layers": SentimentModelConfig(),
            "fine-tuned, aspects on tuned vectors": SentimentModelConfig(aspect_vectors="tuned"),
            "fine-tuned, aspects off": SentimentModelConfig(aspects_enabled=False),
        }
        models: dict[str, tuple[SentimentModel, float]] = {}
        for label, config in configs.items():
            model = SentimentModel(config)
            started = time.perf_counter()
            model.load()
            models[label] = (model, time.perf_counter() - started)
    warm_up = [ReviewText(text=text) for text in texts[: args.batch]]
    for model, _ in models.values():
        model.predict_batch(warm_up)
    seconds = dict.fromkeys(models, 0.0)
    for _ in range(args.rounds):
        for label, (model, _) in models.items():
            started = time.perf_counter()
            for start in range(0, len(texts), args.batch):
                model.predict_batch([ReviewText(text=t) for t in texts[start : start + args.batch]])
            seconds[label] += time.perf_counter() - started
    print(
        f"{len(texts)} reviews x {args.rounds} rounds, batch {args.batch}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    baseline = args.rounds * len(texts) / seconds["frozen encoder (baseline)"]
    print(f"{'configuration':45s} {'reviews/s':>10s} {'vs baseline':>12s} {'load s':>7s}")
    for label, (model, load_seconds) in models.items():
        rate = args.rounds * len(texts) / seconds[label]
        print(f"{label:45s} {rate:10.1f} {rate / baseline:12.2f} {load_seconds:7.1f}")
        model.unload()


if __name__ == "__main__":
    main()
