"""The sentiment model: review polarity with a calibrated score, plus aspect findings.

Two backends, chosen by ``SENTIMENT_MODEL__BACKEND``:

* ``encoder_head`` (default, offline): the multilingual-e5-small encoder from the
  ``shopstream.models`` registry and the small logistic-regression head shipped in
  ``heads/default`` (trained by ``shopstream-sentiment train``). A head trained with
  ``--finetune-layers`` also ships the encoder's fine-tuned top layers, which replace the
  packaged ones at load; aspects are then matched on the original top layers, run from the
  same lower layers' output (``aspect_vectors``). A review is cut into
  whole-sentence chunks of about ``chunk_tokens`` tokens; their embeddings are averaged, so a
  long review is read to the end instead of being truncated at the encoder's limit.
* ``sequence_classification``: any Hugging Face ``AutoModelForSequenceClassification`` (a Hub id
  or local directory, e.g. a Chinese RoBERTa fine-tuned on reviews), its labels mapped to
  polarities by ``label_map``. P(positive) is ``p(pos) + p(neutral) / 2``, so a confident
  neutral lands in the neutral band. Chunk logits of a long review are averaged. This backend
  has no sentence embeddings, so aspects come from keywords only.

Every batch is one encoder pass: the chunks of all reviews and the clauses of all reviews
(for aspects) are de-duplicated (a one-sentence review *is* its only clause) and encoded
together, sorted by length inside the encoder. Labels follow ``shopstream_sentiment.labelling``
(neutral band around 0.5, stars strongly against the text). No Kafka here.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from shopstream_sentiment.aspects import AspectCatalog, ClauseAspects, PrototypeIndex
from shopstream_sentiment.config import SentimentModelConfig
from shopstream_sentiment.head import language_group
from shopstream_sentiment.labelling import LabelRule
from shopstream_sentiment.predictions import (
    AspectPrediction,
    PolarityName,
    ReviewText,
    SentimentPrediction,
)
from shopstream_sentiment.scoring import FloatArray, ScoringBackend, ScoringUnit
from shopstream_sentiment.segmentation import chunk_text

if TYPE_CHECKING:
    from shopstream.models import LoadReport

logger = logging.getLogger("shopstream.sentiment")


class SentimentModel:
    """Load once, then ``predict_batch`` from one thread at a time; ``unload`` frees memory."""

    def __init__(self, config: SentimentModelConfig | None = None) -> None:
        self.config = config or SentimentModelConfig()
        self.model_id = (
            self.config.hf_model or ""
            if self.config.backend == "sequence_classification"
            else f"{self.config.encoder}+sentiment-head"
        )
        self.model_revision = ""
        self.load_seconds = 0.0
        self.report: LoadReport | None = None
        self.rule = LabelRule(neutral_band=0.0)
        self.aspect_rule = LabelRule(neutral_band=0.0)
        self.catalog: AspectCatalog | None = None
        self._backend: ScoringBackend | None = None
        self._prototypes: PrototypeIndex | None = None

    @property
    def is_loaded(self) -> bool:
        return self._backend is not None

    def load(self) -> LoadReport:
        """Load (converting the packaged encoder on first use) and embed aspect prototypes."""
        if self.report is not None and self._backend is not None:
            return self.report
        started = time.perf_counter()
        from shopstream_sentiment import backends  # noqa: PLC0415  torch stays out of imports

        config = self.config
        backend, report = backends.load_backend(config)
        self._backend = backend
        self.rule = LabelRule(
            neutral_band=(
                backend.neutral_band if config.neutral_band is None else config.neutral_band
            ),
            rating_disagreement=config.rating_disagreement,
        )
        self.aspect_rule = LabelRule(
            neutral_band=(
                self.rule.neutral_band
                if config.aspect_neutral_band is None
                else config.aspect_neutral_band
            )
        )
        aspects_revision = "no-aspects"
        if config.aspects_enabled:
            self.catalog = AspectCatalog.from_file(config.aspects)
            aspects_revision = hashlib.sha256(config.aspects.read_bytes()).hexdigest()[:8]
            prototypes = self.catalog.prototypes()
            vectors = backend.embed([sentence for _, sentence in prototypes])
            if vectors is not None:
                self._prototypes = PrototypeIndex(vectors, [aspect for aspect, _ in prototypes])
        self.model_id = backend.model_id
        self.model_revision = f"{backend.revision}+aspects-{aspects_revision}"
        self.load_seconds = time.perf_counter() - started
        self.report = report
        logger.info(
            "sentiment model %s (%s) ready in %.2f s, neutral band %.3f",
            self.model_id,
            self.model_revision,
            self.load_seconds,
            self.rule.neutral_band,
        )
        return report

    def predict_batch(self, inputs: Sequence[ReviewText]) -> list[SentimentPrediction]:
        backend = self._backend
        if backend is None:
            raise RuntimeError("sentiment model is not loaded; call load() first")
        if not inputs:
            return []
        chunking = backend.chunking
        groups = [language_group(review.text, review.locale) for review in inputs]
        units = [
            ScoringUnit(
                text=review.text,
                passages=tuple(
                    chunk.text
                    for chunk in chunk_text(review.text, chunking.chunk_tokens, chunking.max_chunks)
                ),
                group=group,
            )
            for review, group in zip(inputs, groups, strict=True)
        ]
        clauses: list[list[ClauseAspects]] = [
            self.catalog.clauses(review.text) if self.catalog is not None else []
            for review in inputs
        ]
        units += [
            ScoringUnit(text=clause.clause, passages=(clause.clause,), group=group)
            for review_clauses, group in zip(clauses, groups, strict=True)
            for clause in review_clauses
        ]
        probabilities, vectors = backend.score(units)

        predictions: list[SentimentPrediction] = []
        cursor = len(inputs)
        for index, review in enumerate(inputs):
            probability = float(probabilities[index])
            label, confidence = self.rule.label(probability, review.rating)
            count = len(clauses[index])
            clause_rows = slice(cursor, cursor + count)
            cursor += count
            aspects = self._aspects(
                clauses[index],
                probabilities[clause_rows],
                None if vectors is None else vectors[clause_rows],
            )
            predictions.append(
                SentimentPrediction(
                    label=label, score=probability, confidence=confidence, aspects=aspects
                )
            )
        return predictions

    def _aspects(
        self,
        clauses: Sequence[ClauseAspects],
        probabilities: FloatArray,
        vectors: FloatArray | None,
    ) -> list[AspectPrediction]:
        if not clauses or self.catalog is None:
            return []
        fallback: list[str | None] = [None] * len(clauses)
        if vectors is not None and self._prototypes is not None:
            fallback = self._prototypes.nearest(vectors, self.aspect_threshold())
        findings: list[AspectPrediction] = []
        for clause, probability, nearest in zip(clauses, probabilities, fallback, strict=True):
            names = clause.aspects or ((nearest,) if nearest is not None else ())
            polarity: PolarityName = self.aspect_rule.label(float(probability))[0]
            findings.extend(
                AspectPrediction(
                    aspect=name,
                    polarity=polarity,
                    score=float(probability),
                    snippet=clause.clause,
                )
                for name in names
            )
        return findings

    def aspect_threshold(self) -> float:
        if self.config.aspect_threshold is not None:
            return self.config.aspect_threshold
        return self.catalog.prototype_threshold if self.catalog is not None else 1.0

    def unload(self) -> None:
        if self._backend is not None:
            self._backend.unload()
        self._backend = None
        self._prototypes = None
        self.report = None
