"""Settings of the sentiment service (env prefix ``SENTIMENT_``, nested fields joined by ``__``).

Examples: ``SENTIMENT_MODEL__DEVICE=cuda``, ``SENTIMENT_MODEL__BACKEND=sequence_classification``
with ``SENTIMENT_MODEL__HF_MODEL=/models/roberta-zh-sentiment``,
``SENTIMENT_MODEL__ASPECTS=/etc/shopstream/aspects.json``,
``SENTIMENT_INSIGHT_WINDOWS='["7d","30d"]'``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shopstream.models.names import DEFAULT_ENCODER
from shopstream.models.settings import ModelRuntimeSettings
from shopstream.settings import ServiceSettings


def packaged_path(*parts: str) -> Path:
    """A file shipped inside this package (the default head, the default aspects file)."""
    return Path(str(resources.files("shopstream_sentiment").joinpath(*parts)))


DEFAULT_HEAD = packaged_path("heads", "default")
DEFAULT_ASPECTS = packaged_path("data", "aspects.json")


class SentimentModelConfig(ModelRuntimeSettings):
    """How reviews are scored: which model, where, and the rules that turn scores into labels.

    ``device``, ``threads`` and ``batch_size`` (texts per encoder forward pass: reviews' chunks
    and aspect clauses together) come from ``ModelRuntimeSettings``."""

    backend: Literal["encoder_head", "sequence_classification"] = "encoder_head"
    """``encoder_head``: a sentence encoder (frozen, or with fine-tuned top layers shipped in the
    head) plus the small linear head trained by ``shopstream-sentiment train``.
    ``sequence_classification``: any Hugging Face ``AutoModelForSequenceClassification`` (Hub id
    or local directory) named by ``hf_model``."""
    encoder: str = DEFAULT_ENCODER
    """Encoder of the ``encoder_head`` backend: a registry name, local directory or Hub id. It
    must be the encoder the head was trained on; ``load()`` refuses a mismatch."""
    head: Path = DEFAULT_HEAD
    """Directory holding ``head.safetensors`` and ``metadata.json``; defaults to the head
    shipped in the package (multilingual-e5-small, trained on Chinese and English reviews)."""
    hf_model: str | None = None
    """Model of the ``sequence_classification`` backend (Hub id or local directory)."""
    hf_revision: str | None = None
    """Hub branch, tag or commit of ``hf_model``."""
    label_map: dict[str, Literal["positive", "neutral", "negative"]] = Field(default_factory=dict)
    """Classifier label (as in its ``config.id2label``, or the index as a string) to polarity.
    Empty: guessed from the label names (``pos``/``positive``/``LABEL_1`` ... ``neg``)."""
    aspects: Path = DEFAULT_ASPECTS
    """Aspect catalogue (keywords and prototype sentences per aspect); point it at an
    operator's own JSON file to change the aspects without a release."""
    aspects_enabled: bool = True
    """Turn off aspect findings to score whole reviews only (about half the encoder work)."""
    aspect_vectors: Literal["frozen", "tuned"] = "frozen"
    """With a head that ships fine-tuned encoder layers: which layers give the clause vectors
    that aspects are matched on. ``frozen`` (the space the catalogue's prototypes and threshold
    were chosen in) also runs the original top layers in the same pass, which costs those
    layers once more; ``tuned`` reuses the sentiment vectors."""
    max_length: int = Field(default=256, ge=16, le=512)
    """Longest tokenised passage handed to the model; chunks are sized below it."""
    chunk_tokens: int = Field(default=128, ge=16, le=512)
    """Estimated token budget per review chunk: long reviews are split into whole-sentence
    chunks of about this size whose embeddings are averaged."""
    max_chunks: int = Field(default=8, ge=1, le=64)
    """Chunks kept per review (the first ones and the last one); bounds the cost of a very
    long review."""
    neutral_band: float | None = Field(default=None, ge=0.0, lt=1.0)
    """Width of the neutral band around P(positive) = 0.5: neutral when
    |P(positive) - 0.5| < neutral_band / 2. Unset: the band calibrated with the head."""
    rating_disagreement: float = Field(default=0.8, gt=0.5, le=1.0)
    """A review whose star rating points one way while the text is at least this confident
    the other way is labelled neutral (see the rule in ``shopstream_sentiment.model``)."""
    aspect_threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    """Similarity a clause needs to an aspect's prototype direction to get that aspect when
    no keyword matched (see ``aspects.PrototypeIndex``). Unset: the value in the aspects file."""
    aspect_neutral_band: float | None = Field(default=None, ge=0.0, lt=1.0)
    """Neutral band of an aspect finding's polarity (its clause's P(positive)), as
    ``neutral_band`` is for the review. Unset: the review's band. A clause is short and scores
    nearer 0.5 than a whole review, so the review's band calls more clauses neutral (see the
    README's aspect table for what a narrower band measured)."""

    @model_validator(mode="after")
    def _backend_needs_its_model(self) -> SentimentModelConfig:
        if self.backend == "sequence_classification" and not self.hf_model:
            raise ValueError("backend 'sequence_classification' needs model.hf_model")
        return self


class SentimentSettings(ServiceSettings):
    """Settings of the sentiment service; the topics are ``topics.reviews`` (in),
    ``topics.sentiment`` and ``topics.insights`` (out), from the shared topic registry."""

    model_config = SettingsConfigDict(env_prefix="SENTIMENT_")

    model: SentimentModelConfig = SentimentModelConfig()
    """The scoring model and its labelling rules."""
    insight_windows: list[str] = Field(default_factory=lambda: ["7d", "30d"], min_length=1)
    """Rolling windows of the per-product insights (``<n>d`` or ``<n>h``); the shortest is the
    *recent* window compared with the baseline for alerts."""
    alert_min_reviews: int = Field(default=10, ge=1)
    """Reviews needed in the recent window and in the baseline before an alert can fire, so a
    product with three reviews does not alert on one bad one."""
    alert_jump: float = Field(default=0.15, gt=0.0, le=1.0)
    """Alert when the recent window's negative share exceeds the baseline's by at least this
    much (0.15 = 15 percentage points)."""
