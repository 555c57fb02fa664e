"""What the sentiment model returns; shared by the model (torch side) and handlers (Kafka side)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PolarityName = Literal["positive", "neutral", "negative"]


@dataclass(frozen=True, slots=True)
class ReviewText:
    text: str
    rating: float | None = None
    locale: str | None = None


@dataclass(frozen=True, slots=True)
class AspectPrediction:
    aspect: str
    polarity: PolarityName
    score: float
    """Calibrated probability that the snippet is positive."""
    snippet: str


@dataclass(frozen=True, slots=True)
class SentimentPrediction:
    label: PolarityName
    score: float
    """Calibrated probability that the review is positive."""
    confidence: float
    """Probability of the chosen label (for neutral: how close the score is to the boundary)."""
    aspects: list[AspectPrediction] = field(default_factory=list)
