"""The trained head: one logistic regression over [sentence embedding, hashed n-grams].

On disk a head is a directory with

* ``head.safetensors``: ``embedding_weights`` (dim,), ``bias`` (1,), ``calibration`` (2,) =
  Platt scale and shift, and, when the lexical block is used, ``lexical_weights`` (2**bits,
  float16 to keep the file small; the naive-Bayes bucket scale is folded into them, since a
  row is normalised before it is scaled);
* ``metadata.json``: the encoder (id and revision) the head was trained on, how reviews were
  chunked, the lexical hash size, the neutral band, held-out metrics, the training data's
  sha256, the date and the exact command that reproduces it.

Scoring is a handful of numpy dot products, so neither torch nor scikit-learn is needed here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file, save_file

from shopstream_sentiment.lexical import LexicalHasher

FloatArray = npt.NDArray[np.float32]

WEIGHTS_FILE = "head.safetensors"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1


def sigmoid(values: FloatArray) -> FloatArray:
    clipped = np.clip(values, -60.0, 60.0)
    result: FloatArray = (1.0 / (1.0 + np.exp(-clipped))).astype(np.float32)
    return result


@dataclass(frozen=True)
class Chunking:
    """How a review becomes encoder passages; training and serving must agree on it."""

    chunk_tokens: int = 128
    max_chunks: int = 8


@dataclass
class LinearHead:
    embedding_weights: FloatArray
    bias: float
    calibration_scale: float = 1.0
    calibration_shift: float = 0.0
    lexical: LexicalHasher | None = None
    """Hashes texts into unscaled rows; the training scale lives inside ``lexical_weights``."""
    lexical_weights: FloatArray | None = None
    neutral_band: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    revision: str = ""
    """First 12 hex digits of the weights file's sha256, stamped on every result."""

    @property
    def dim(self) -> int:
        return int(self.embedding_weights.shape[0])

    @property
    def encoder(self) -> str:
        return str(self.metadata.get("encoder", {}).get("id", ""))

    @property
    def chunking(self) -> Chunking:
        raw = self.metadata.get("chunking", {})
        return Chunking(
            chunk_tokens=int(raw.get("chunk_tokens", 128)), max_chunks=int(raw.get("max_chunks", 8))
        )

    def logits(self, embeddings: FloatArray, texts: Sequence[str]) -> FloatArray:
        """Uncalibrated logits of P(positive) for rows of embeddings and their texts."""
        if embeddings.shape != (len(texts), self.dim):
            raise ValueError(
                f"expected embeddings of shape ({len(texts)}, {self.dim}), got {embeddings.shape}"
            )
        scores: FloatArray = (embeddings @ self.embedding_weights + self.bias).astype(np.float32)
        if self.lexical is not None and self.lexical_weights is not None:
            scores = scores + self.lexical.dot(texts, self.lexical_weights)
        return scores

    def probabilities(self, embeddings: FloatArray, texts: Sequence[str]) -> FloatArray:
        """Calibrated P(positive)."""
        return self.calibrate(self.logits(embeddings, texts))

    def calibrate(self, logits: FloatArray) -> FloatArray:
        return sigmoid(self.calibration_scale * logits + self.calibration_shift)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {
            "embedding_weights": self.embedding_weights.astype(np.float32),
            "bias": np.asarray([self.bias], dtype=np.float32),
            "calibration": np.asarray(
                [self.calibration_scale, self.calibration_shift], dtype=np.float32
            ),
        }
        if self.lexical is not None and self.lexical_weights is not None:
            tensors["lexical_weights"] = self.lexical_weights.astype(np.float16)
        weights_path = directory / WEIGHTS_FILE
        save_file(tensors, str(weights_path), metadata={"format": "shopstream-sentiment-head"})
        self.revision = file_revision(weights_path)
        metadata = {
            **self.metadata,
            "format_version": FORMAT_VERSION,
            "revision": self.revision,
            "neutral_band": self.neutral_band,
            "lexical_bits": self.lexical.bits if self.lexical is not None else None,
        }
        self.metadata = metadata
        (directory / METADATA_FILE).write_text(
            json.dumps(metadata, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        return directory

    @classmethod
    def load(cls, directory: Path) -> LinearHead:
        weights_path = directory / WEIGHTS_FILE
        metadata_path = directory / METADATA_FILE
        if not weights_path.is_file() or not metadata_path.is_file():
            raise FileNotFoundError(
                f"{directory} is not a sentiment head (needs {WEIGHTS_FILE} and {METADATA_FILE})"
            )
        metadata: dict[str, Any] = json.loads(metadata_path.read_text(encoding="utf-8"))
        if metadata.get("format_version") != FORMAT_VERSION:
            version = metadata.get("format_version")
            raise ValueError(f"{directory}: unsupported head format {version}")
        tensors = load_file(str(weights_path))
        lexical: LexicalHasher | None = None
        lexical_weights: FloatArray | None = None
        if "lexical_weights" in tensors:
            bits = int(metadata["lexical_bits"])
            lexical = LexicalHasher(bits)
            lexical_weights = tensors["lexical_weights"].astype(np.float32)
        scale, shift = (float(v) for v in tensors["calibration"])
        return cls(
            embedding_weights=tensors["embedding_weights"].astype(np.float32),
            bias=float(tensors["bias"][0]),
            calibration_scale=scale,
            calibration_shift=shift,
            lexical=lexical,
            lexical_weights=lexical_weights,
            neutral_band=float(metadata.get("neutral_band", 0.0)),
            metadata=metadata,
            revision=file_revision(weights_path),
        )


def pool_passages(vectors: FloatArray, groups: Sequence[Sequence[int]]) -> FloatArray:
    """One unit-length vector per group: the mean of its passages' embeddings, re-normalised.

    Re-normalising keeps a ten-chunk review on the same scale as a one-line review, which is
    what the head's weights were fitted on.
    """
    pooled = np.zeros((len(groups), vectors.shape[1]), dtype=np.float32)
    for row, group in enumerate(groups):
        if group:
            pooled[row] = vectors[list(group)].mean(axis=0)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    result: FloatArray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


def file_revision(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def encoder_record(metadata: Mapping[str, Any]) -> tuple[str, str]:
    """(encoder id, encoder revision) the head was trained with."""
    encoder = metadata.get("encoder", {})
    return str(encoder.get("id", "")), str(encoder.get("revision", ""))
