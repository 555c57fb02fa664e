"""What the sentiment model hands its backends and gets back: units to score, the backend
protocol, and the passage de-duplication every backend does.

Its own module so that ``model`` (which picks a backend) and ``backends`` (which implements
them) both import it and not each other. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from shopstream_sentiment.head import Chunking

FloatArray = npt.NDArray[np.float32]

DEFAULT_SEQUENCE_CLASSIFIER_BAND = 0.2
"""Neutral band of an uncalibrated third-party classifier unless configured."""


@dataclass(frozen=True, slots=True)
class ScoringUnit:
    """One thing to score: its full text (for lexical features), its encoder passages and its
    language group (a clause takes its review's, so a quoted English phrase in a Chinese review
    is still scored by the Chinese head)."""

    text: str
    passages: tuple[str, ...]
    group: str


class ScoringBackend(Protocol):
    """A loaded model that scores units; ``vectors`` are unit-length unit embeddings, or None
    when the backend has no sentence embeddings."""

    model_id: str
    revision: str
    chunking: Chunking
    neutral_band: float

    def score(self, units: Sequence[ScoringUnit]) -> tuple[FloatArray, FloatArray | None]: ...

    def embed(self, texts: Sequence[str]) -> FloatArray | None: ...

    def unload(self) -> None: ...


def unique_passages(units: Sequence[ScoringUnit]) -> tuple[list[str], list[list[int]]]:
    """Distinct passages in first-seen order, and each unit's passage indices into them.

    A short review is one chunk and one clause with the same text; encoding it once instead of
    twice roughly halves the encoder's work on typical short reviews.
    """
    position: dict[str, int] = {}
    groups = [
        [position.setdefault(passage, len(position)) for passage in unit.passages] for unit in units
    ]
    return list(position), groups
