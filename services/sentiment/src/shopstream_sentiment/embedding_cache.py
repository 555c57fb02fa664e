"""Review embeddings for training: chunked and pooled as the service does, cached per passage.

Embedding a full training set takes tens of minutes on a small CPU; during development the
cache (in a scratch directory, never committed) makes re-training take seconds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from shopstream_sentiment.head import Chunking, FloatArray, pool_passages
from shopstream_sentiment.segmentation import chunk_text

logger = logging.getLogger("shopstream.sentiment")


class PassageCache:
    """Per-passage embeddings on disk, keyed by encoder revision and passage text."""

    def __init__(self, directory: Path | None, encoder: str, revision: str) -> None:
        self.path: Path | None = None
        self.vectors: dict[str, FloatArray] = {}
        if directory is None:
            return
        name = hashlib.sha256(f"{encoder}\0{revision}".encode()).hexdigest()[:16]
        self.path = directory / f"passages-{name}.npz"
        if self.path.is_file():
            with np.load(self.path) as stored:
                self.vectors = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))

    @staticmethod
    def key(passage: str) -> str:
        return hashlib.sha1(passage.encode("utf-8"), usedforsecurity=False).hexdigest()

    def save(self) -> None:
        if self.path is None or not self.vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self.vectors))
        np.savez(self.path, keys=keys, vectors=np.stack(list(self.vectors.values())))


class PassageEncoder(Protocol):
    """The part of ``shopstream.models.TextEncoder`` that training uses."""

    def encode(
        self, texts: Sequence[str], *, kind: Literal["query", "passage"], batch_size: int
    ) -> FloatArray: ...


def embed_reviews(
    texts: Sequence[str],
    encoder: PassageEncoder,
    cache: PassageCache,
    *,
    chunking: Chunking,
    batch_size: int,
) -> FloatArray:
    """One pooled, unit-length embedding per review, chunked like the service chunks."""
    budget, max_chunks = chunking.chunk_tokens, chunking.max_chunks
    groups_text = [[chunk.text for chunk in chunk_text(text, budget, max_chunks)] for text in texts]
    position: dict[str, int] = {}
    groups = [[position.setdefault(p, len(position)) for p in group] for group in groups_text]
    passages = list(position)
    missing = [p for p in passages if PassageCache.key(p) not in cache.vectors]
    if missing:
        logger.info("embedding %d passages (%d cached)", len(missing), len(passages) - len(missing))
        vectors = encoder.encode(missing, kind="query", batch_size=batch_size)
        for passage, vector in zip(missing, vectors, strict=True):
            cache.vectors[PassageCache.key(passage)] = vector
        cache.save()
    matrix = np.stack([cache.vectors[PassageCache.key(p)] for p in passages])
    return pool_passages(matrix, groups)
