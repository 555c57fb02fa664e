"""The torch side of the sentiment model: the encoder+head backend and the classifier backend.

Imported by ``SentimentModel.load()`` only, so importing the service's other modules (and the
unit tests) never pulls in torch. Both backends load through ``shopstream.models``.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from shopstream.models import (
    LayerStack,
    LoadReport,
    TextClassifier,
    TextEncoder,
    transformer_layers,
)
from shopstream_sentiment.config import SentimentModelConfig
from shopstream_sentiment.head import Chunking, SentimentHead, encoder_record, pool_passages
from shopstream_sentiment.predictions import PolarityName
from shopstream_sentiment.scoring import (
    DEFAULT_SEQUENCE_CLASSIFIER_BAND,
    FloatArray,
    ScoringBackend,
    ScoringUnit,
    unique_passages,
)

logger = logging.getLogger("shopstream.sentiment")


class EncoderHeadBackend:
    """Sentence encoder (frozen, or with the top layers fine-tuned and shipped in the head)
    + the linear head trained for it."""

    def __init__(self, config: SentimentModelConfig) -> None:
        self.config = config
        self.head = SentimentHead.load(config.head)
        trained_on, trained_revision = encoder_record(self.head.metadata)
        if trained_on != config.encoder:
            raise ValueError(
                f"head {config.head} was trained on encoder {trained_on!r}, not "
                f"{config.encoder!r}; train a head for this encoder with `shopstream-sentiment "
                "train` or point SENTIMENT_MODEL__HEAD at one"
            )
        self._trained_revision = trained_revision
        self.encoder = TextEncoder(
            config.encoder, max_length=config.max_length, **config.runtime_options()
        )
        self.model_id = f"{config.encoder}+sentiment-head"
        self.revision = ""
        self.chunking = self.head.chunking
        self.neutral_band = self.head.neutral_band
        self.frozen_top: LayerStack | None = None
        """The original top layers, kept for aspect vectors when the head tunes them."""

    def load(self) -> LoadReport:
        report = self.encoder.load()
        if self.head.encoder_weights:
            # Fine-tuned top layers ship with the head: same architecture, same cost.
            layers = transformer_layers(self.encoder.loaded_model())
            first = tuned_from(self.head.encoder_weights, len(layers))
            if self.config.aspects_enabled and self.config.aspect_vectors == "frozen":
                self.frozen_top = LayerStack(copy.deepcopy(layers[first:]))
            self.encoder.replace_weights(self.head.encoder_weights)
        if self._trained_revision and self.encoder.revision != self._trained_revision:
            # Same model name, other weights (e.g. a newer package): scores may drift a little.
            logger.warning(
                "head was trained on %s revision %s, loaded revision %s",
                self.config.encoder,
                self._trained_revision,
                self.encoder.revision,
            )
        self.revision = f"{self.encoder.revision}+head-{self.head.revision}"
        return report

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """Vectors in the space aspects are matched in (the frozen layers' when kept)."""
        return self._encode(texts)[1]

    def score(self, units: Sequence[ScoringUnit]) -> tuple[FloatArray, FloatArray | None]:
        """(P(positive) per unit, the unit's vector for aspect matching)."""
        passages, groups = unique_passages(units)
        sentiment, aspect = self._encode(passages)
        vectors = pool_passages(sentiment, groups)
        probabilities = self.head.probabilities(
            vectors, [unit.text for unit in units], [unit.group for unit in units]
        )
        return probabilities, vectors if aspect is sentiment else pool_passages(aspect, groups)

    def _encode(self, texts: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """(sentiment vectors, aspect vectors): the same array unless frozen layers are kept."""
        batch_size = self.config.batch_size
        if self.frozen_top is None:
            vectors = self.encoder.encode(list(texts), kind="query", batch_size=batch_size)
            return vectors, vectors
        return self.encoder.encode_with_branch(
            list(texts), self.frozen_top, kind="query", batch_size=batch_size
        )

    def unload(self) -> None:
        self.frozen_top = None
        self.encoder.unload()


def tuned_from(weights: Mapping[str, object], layer_count: int) -> int:
    """The first encoder layer a head's tuned weights replace; they must run to the top."""
    indices = {
        int(match.group(1))
        for name in weights
        if (match := re.search(r"(?:^|\.)layer\.(\d+)\.", name)) is not None
    }
    if not indices or indices != set(range(min(indices), layer_count)):
        raise ValueError(
            f"the head's encoder weights cover layers {sorted(indices)}, not a top block of "
            f"the encoder's {layer_count}"
        )
    return min(indices)


_STAR_LABEL = re.compile(r"^([1-5])\s*stars?$")


def guess_polarity(label: str, index: int, count: int) -> PolarityName:
    """Polarity of a classifier label when ``label_map`` does not name it.

    Understands names containing pos/neg/neu, ``N star(s)`` (1-2 negative, 3 neutral, 4-5
    positive) and the anonymous ``LABEL_i`` of two-class (negative, positive) and three-class
    (negative, neutral, positive) heads, the usual conventions on the Hub.
    """
    name = label.strip().lower()
    stars = _STAR_LABEL.match(name)
    if stars:
        value = int(stars.group(1))
        return "negative" if value <= 2 else "neutral" if value == 3 else "positive"
    stems: tuple[tuple[str, PolarityName], ...] = (
        ("neg", "negative"),
        ("neu", "neutral"),
        ("pos", "positive"),
    )
    for stem, polarity in stems:
        if stem in name:
            return polarity
    anonymous: dict[int, tuple[PolarityName, ...]] = {
        2: ("negative", "positive"),
        3: ("negative", "neutral", "positive"),
    }
    if count in anonymous:
        return anonymous[count][index]
    raise ValueError(
        f"cannot tell the polarity of classifier label {label!r}; set SENTIMENT_MODEL__LABEL_MAP"
    )


def polarity_weights(
    id2label: Mapping[int, str], label_map: Mapping[str, PolarityName]
) -> FloatArray:
    """Per class, its weight in P(positive): 1 for positive, 0.5 for neutral, 0 for negative."""
    weight = {"positive": 1.0, "neutral": 0.5, "negative": 0.0}
    count = len(id2label)
    result = np.zeros(count, dtype=np.float32)
    for index in range(count):
        label = id2label[index]
        polarity = label_map.get(label) or label_map.get(str(index))
        result[index] = weight[polarity or guess_polarity(label, index, count)]
    if not (result == 1.0).any() or not (result == 0.0).any():
        raise ValueError(f"classifier labels {dict(id2label)} need a positive and a negative class")
    return result


class SequenceClassificationBackend:
    """A ``shopstream.models.TextClassifier`` whose classes are weighed into P(positive);
    chunks of long reviews average their logits."""

    def __init__(self, config: SentimentModelConfig) -> None:
        if config.hf_model is None:
            raise ValueError("the sequence_classification backend needs model.hf_model")
        self.config = config
        self.classifier = TextClassifier(
            config.hf_model,
            revision=config.hf_revision,
            max_length=config.max_length,
            role="sentiment classifier",
            **config.runtime_options(),
        )
        self.model_id = config.hf_model
        self.revision = ""
        self.chunking = Chunking(
            chunk_tokens=min(config.chunk_tokens, config.max_length - 2),
            max_chunks=config.max_chunks,
        )
        self.neutral_band = DEFAULT_SEQUENCE_CLASSIFIER_BAND
        self._weights: torch.Tensor | None = None

    def load(self) -> LoadReport:
        report = self.classifier.load()
        weights = polarity_weights(self.classifier.id2label, self.config.label_map)
        self._weights = torch.from_numpy(weights)
        self.revision = self.classifier.revision
        return report

    def embed(self, texts: Sequence[str]) -> FloatArray | None:
        return None

    def score(self, units: Sequence[ScoringUnit]) -> tuple[FloatArray, FloatArray | None]:
        if self._weights is None:
            raise RuntimeError("classifier is not loaded")
        passages, groups = unique_passages(units)
        logits = self.classifier.logits(passages, batch_size=self.config.batch_size)
        pooled = torch.stack([logits[group].mean(dim=0) for group in groups])
        probabilities = torch.softmax(pooled, dim=-1) @ self._weights
        return probabilities.numpy().astype(np.float32), None

    def unload(self) -> None:
        self.classifier.unload()
        self._weights = None


def load_backend(config: SentimentModelConfig) -> tuple[ScoringBackend, LoadReport]:
    """Build and load the configured backend (which sets the thread count as it loads)."""
    if config.backend == "sequence_classification":
        classifier = SequenceClassificationBackend(config)
        return classifier, classifier.load()
    encoder_head = EncoderHeadBackend(config)
    return encoder_head, encoder_head.load()
