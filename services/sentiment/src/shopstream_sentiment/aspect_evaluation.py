"""Score the aspect findings against sentences labelled with (aspect, polarity) pairs.

A labelled file is JSON lines: ``{"text": ..., "aspects": [["quality", "negative"], ...]}``
(``tests/eval/data/sentiment_aspects_*.jsonl``). Each sentence goes through
``SentimentModel.predict_batch`` as a review, so clause splitting, keywords, prototypes and the
clause's polarity are exactly the service's; its findings become a set of (aspect, polarity)
pairs, one per aspect and polarity however many clauses found it.

Two scores per aspect: *detection* (is the aspect named at all; polarity ignored) and *pairs*
(aspect and polarity both right). Precision is over the sentences where the finder reported the
aspect, recall over those where the gold list has it; the micro average pools the counts of all
aspects. Torch is imported only by ``evaluate_aspect_files``, so the metrics are unit-tested
without a model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopstream_sentiment.config import SentimentModelConfig
from shopstream_sentiment.predictions import ReviewText, SentimentPrediction

Pair = tuple[str, str]
POLARITIES = frozenset({"positive", "neutral", "negative"})


@dataclass(frozen=True, slots=True)
class AspectExample:
    text: str
    gold: frozenset[Pair]


@dataclass(slots=True)
class Counts:
    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positive + self.false_positive
        return self.true_positive / found if found else 0.0

    @property
    def recall(self) -> float:
        wanted = self.true_positive + self.false_negative
        return self.true_positive / wanted if wanted else 0.0

    @property
    def f1(self) -> float:
        both = self.precision + self.recall
        return 2 * self.precision * self.recall / both if both else 0.0

    def add(self, gold: set[Any] | frozenset[Any], found: set[Any] | frozenset[Any]) -> None:
        self.true_positive += len(gold & found)
        self.false_positive += len(found - gold)
        self.false_negative += len(gold - found)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "gold": self.true_positive + self.false_negative,
            "found": self.true_positive + self.false_positive,
        }


@dataclass(frozen=True)
class AspectScores:
    detection: dict[str, Counts]
    pairs: dict[str, Counts]

    def micro(self, which: dict[str, Counts]) -> Counts:
        total = Counts()
        for counts in which.values():
            total.true_positive += counts.true_positive
            total.false_positive += counts.false_positive
            total.false_negative += counts.false_negative
        return total

    def as_dict(self) -> dict[str, Any]:
        return {
            "per_aspect": {
                aspect: {"detection": counts.as_dict(), "pairs": self.pairs[aspect].as_dict()}
                for aspect, counts in self.detection.items()
            },
            "micro": {
                "detection": self.micro(self.detection).as_dict(),
                "pairs": self.micro(self.pairs).as_dict(),
            },
        }


def read_aspect_examples(path: Path, aspects: Iterable[str]) -> list[AspectExample]:
    """The labelled sentences of ``path``; an unknown aspect or polarity names its line."""
    known = set(aspects)
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        pairs = frozenset((str(aspect), str(polarity)) for aspect, polarity in row["aspects"])
        for aspect, polarity in pairs:
            if aspect not in known or polarity not in POLARITIES:
                raise ValueError(f"{path}:{number}: unknown aspect or polarity {aspect}/{polarity}")
        examples.append(AspectExample(text=str(row["text"]), gold=pairs))
    return examples


def found_pairs(prediction: SentimentPrediction) -> frozenset[Pair]:
    return frozenset((finding.aspect, finding.polarity) for finding in prediction.aspects)


def score_aspects(
    gold: Sequence[frozenset[Pair]], found: Sequence[frozenset[Pair]], aspects: Sequence[str]
) -> AspectScores:
    """Per-aspect detection and pair counts over sentences (``gold[i]`` against ``found[i]``)."""
    if len(gold) != len(found):
        raise ValueError("gold and found differ in length")
    names = list(dict.fromkeys([*aspects, *(a for pairs in (*gold, *found) for a, _ in pairs)]))
    detection = {name: Counts() for name in names}
    pairs = {name: Counts() for name in names}
    for wanted, got in zip(gold, found, strict=True):
        for name in names:
            detection[name].add(
                {a for a, _ in wanted if a == name}, {a for a, _ in got if a == name}
            )
            pairs[name].add({p for p in wanted if p[0] == name}, {p for p in got if p[0] == name})
    return AspectScores(detection=detection, pairs=pairs)


def evaluate_aspect_files(
    paths: Sequence[Path],
    config: SentimentModelConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Load the model once, find the aspects of every file's sentences, report per file.

    ``progress(done, total)`` is called after each batch with the sentences done over all files.
    """
    from shopstream_sentiment.model import SentimentModel  # noqa: PLC0415  loads torch

    model = SentimentModel(config)
    model.load()
    catalog = model.catalog
    if catalog is None:
        raise ValueError("aspect evaluation needs aspects_enabled")
    files = [(path, read_aspect_examples(path, catalog.names)) for path in paths]
    total = sum(len(examples) for _, examples in files)
    done = 0
    reports = []
    began = time.perf_counter()
    for path, examples in files:
        predictions: list[SentimentPrediction] = []
        for start in range(0, len(examples), config.batch_size):
            batch = examples[start : start + config.batch_size]
            predictions += model.predict_batch([ReviewText(text=e.text) for e in batch])
            done += len(batch)
            if progress is not None:
                progress(done, total)
        found = [found_pairs(prediction) for prediction in predictions]
        scores = score_aspects([e.gold for e in examples], found, catalog.names)
        reports.append(
            {
                "file": str(path),
                "sentences": len(examples),
                **scores.as_dict(),
                "misses": [
                    {"text": e.text, "gold": sorted(e.gold), "found": sorted(pairs)}
                    for e, pairs in zip(examples, found, strict=True)
                    if pairs != e.gold
                ],
            }
        )
    seconds = time.perf_counter() - began
    model.unload()
    return {
        "files": reports,
        "aspects_file": str(config.aspects),
        "prototype_threshold": model.aspect_threshold(),
        "aspect_neutral_band": model.aspect_rule.neutral_band,
        "model_id": model.model_id,
        "model_revision": model.model_revision,
        "seconds": round(seconds, 2),
    }
