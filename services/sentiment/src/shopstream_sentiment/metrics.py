"""Classification metrics for the train and evaluate commands (plain Python, no scikit-learn)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

LABELS = ("positive", "neutral", "negative")


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationReport:
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion: dict[str, dict[str, int]]
    """confusion[true][predicted]."""
    count: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def classification_report(
    truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> ClassificationReport:
    """Accuracy, macro-F1 over ``labels`` that occur in ``truth``, per-class P/R/F1, confusion."""
    if len(truth) != len(predicted):
        raise ValueError("truth and predictions differ in length")
    confusion = {t: dict.fromkeys(labels, 0) for t in labels}
    for true_label, predicted_label in zip(truth, predicted, strict=True):
        confusion[true_label][predicted_label] += 1
    per_class: dict[str, ClassScores] = {}
    for label in labels:
        true_positive = confusion[label][label]
        predicted_count = sum(confusion[t][label] for t in labels)
        support = sum(confusion[label].values())
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = ClassScores(precision, recall, f1, support)
    present = [label for label in labels if per_class[label].support > 0]
    correct = sum(confusion[label][label] for label in labels)
    return ClassificationReport(
        accuracy=correct / len(truth) if truth else 0.0,
        macro_f1=sum(per_class[label].f1 for label in present) / len(present) if present else 0.0,
        per_class=per_class,
        confusion=confusion,
        count=len(truth),
    )


def log_loss(probabilities: Sequence[float], positives: Sequence[bool]) -> float:
    eps = 1e-7
    total = 0.0
    for p, positive in zip(probabilities, positives, strict=True):
        clipped = min(max(p, eps), 1.0 - eps)
        total -= math.log(clipped if positive else 1.0 - clipped)
    return total / len(probabilities) if probabilities else 0.0


def expected_calibration_error(
    probabilities: Sequence[float], positives: Sequence[bool], bins: int = 10
) -> float:
    """Mean |P(positive) - observed positive rate| over equal-width bins, weighted by size."""
    totals = [0] * bins
    predicted = [0.0] * bins
    observed = [0.0] * bins
    for p, positive in zip(probabilities, positives, strict=True):
        index = min(int(p * bins), bins - 1)
        totals[index] += 1
        predicted[index] += p
        observed[index] += float(positive)
    count = sum(totals)
    if not count:
        return 0.0
    return sum(abs(predicted[i] - observed[i]) for i in range(bins) if totals[i]) / count
