"""The responder's sentence vectors: a multilingual encoder, optionally blended with an English one.

The multilingual encoder (multilingual-e5-small by default) is what lets a Chinese question find
a Chinese or an English passage. For English, a small encoder trained on English paraphrase
pairs (all-MiniLM-L6-v2) tells near-synonym questions apart better ("get my invoice" vs "check
my invoice"): on the Bitext development split, blending the two answered 3.6 points more
questions at 90 % correct than e5 alone (README, responder quality).

Blending is done in the vectors, so the index, the search and the per-shop re-ranker stay one
matrix product. A text on the document side (passages, headings) is stored as
``[sqrt(1 - w) * multilingual, sqrt(w) * english]``, ``w`` the English weight. Then:

* an English question, embedded the same way, scores ``(1 - w) * cos_m + w * cos_e``: the blend;
* any other question is ``[multilingual / sqrt(1 - w), 0]`` and scores exactly ``cos_m``, the
  multilingual encoder's own cosine, so Chinese keeps its calibration and never sees the
  English encoder, which cannot read it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float32]
Vector = npt.NDArray[np.float32]
BLENDED_LANGUAGE = "en"
"""Questions in this language (``text.language_of``) get the blended retrieval vector."""


class Embedder(Protocol):
    """What the responder needs of an encoder (``shopstream.models.TextEncoder`` fits)."""

    model_id: str
    revision: str

    def load(self) -> object: ...

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: Literal["query", "passage"] = "query",
        batch_size: int = 32,
    ) -> FloatMatrix: ...

    def unload(self) -> None: ...


@dataclass(frozen=True, slots=True)
class QuestionVectors:
    intent: Vector
    """The multilingual query vector, compared with the intent prototypes."""
    retrieval: Vector
    """Compared with the index's passage and heading vectors (see the module doc)."""
    features: Vector
    """The question embedded like a document, for the per-shop article classifier, which is
    trained on heading vectors."""
    blended: bool
    """``retrieval`` includes the English encoder, so scores are on the blend's scale."""


class BlendedEncoder:
    """Embeds documents and questions with one or two encoders (not thread-safe: the caller
    serialises calls)."""

    def __init__(
        self,
        multilingual: Embedder,
        english: Embedder | None,
        *,
        english_weight: float,
        batch_size: int,
    ) -> None:
        if english is not None and not 0.0 < english_weight < 1.0:
            raise ValueError("the English encoder's weight must be in (0, 1)")
        self.multilingual = multilingual
        self.english = english
        self._batch_size = batch_size
        self._main_scale = math.sqrt(1.0 - english_weight) if english is not None else 1.0
        self._english_scale = math.sqrt(english_weight) if english is not None else 0.0
        self._english_dimension: int | None = None

    @property
    def revision(self) -> str:
        if self.english is None:
            return self.multilingual.revision
        return f"{self.multilingual.revision}+{self.english.model_id}@{self.english.revision}"

    def prototypes(self, texts: Sequence[str]) -> FloatMatrix:
        """The multilingual query vectors of the intent prototypes."""
        return self._encode(self.multilingual, texts, "query")

    def documents(self, texts: Sequence[str], kind: Literal["query", "passage"]) -> FloatMatrix:
        """Document-side vectors: passages (``passage``) or FAQ headings (``query``)."""
        main = self._encode(self.multilingual, texts, kind)
        if self.english is None:
            return main
        english = self._encode(self.english, texts, kind)
        if english.shape[0]:
            self._english_dimension = int(english.shape[1])
        return np.hstack([main * self._main_scale, english * self._english_scale])

    def questions(self, texts: Sequence[str], languages: Sequence[str]) -> list[QuestionVectors]:
        main = self._encode(self.multilingual, texts, "query")
        if self.english is None:
            return [QuestionVectors(row, row, row, blended=False) for row in main]
        english = self._encode(self.english, texts, "query")
        features = np.hstack([main * self._main_scale, english * self._english_scale])
        return self._as_questions(main, features, languages)

    def heading_questions(
        self, headings: FloatMatrix, languages: Sequence[str]
    ) -> list[QuestionVectors]:
        """Stored heading vectors (``documents(..., "query")``) as the vectors of the same
        text asked as a question, without running an encoder: the per-shop coverage model
        rehearses with the shop's own headings (``shopstream_responder.coverage``). Exact:
        a heading was embedded as a query, and a question's vectors are rescalings of it."""
        if self.english is None:
            return [QuestionVectors(row, row, row, blended=False) for row in headings]
        width = headings.shape[1] - self._english_width(headings)
        return self._as_questions(headings[:, :width] / self._main_scale, headings, languages)

    def _as_questions(
        self, main: FloatMatrix, features: FloatMatrix, languages: Sequence[str]
    ) -> list[QuestionVectors]:
        """Per question: its multilingual vector ``main`` and blended ``features``; retrieval
        uses the blend for English and the multilingual encoder alone otherwise."""
        alone = np.zeros_like(features)
        alone[:, : main.shape[1]] = main / self._main_scale
        return [
            QuestionVectors(
                intent=main[row],
                retrieval=features[row] if blended else alone[row],
                features=features[row],
                blended=blended,
            )
            for row, blended in enumerate(language == BLENDED_LANGUAGE for language in languages)
        ]

    def _english_width(self, headings: FloatMatrix) -> int:
        if self._english_dimension is None:
            raise RuntimeError("no document has been embedded yet")
        if self._english_dimension >= headings.shape[1]:
            raise ValueError(f"heading vectors of width {headings.shape[1]} are not blended")
        return self._english_dimension

    def _encode(
        self, embedder: Embedder, texts: Sequence[str], kind: Literal["query", "passage"]
    ) -> FloatMatrix:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        vectors: FloatMatrix = embedder.encode(texts, kind=kind, batch_size=self._batch_size)
        return vectors.astype(np.float32, copy=False)
