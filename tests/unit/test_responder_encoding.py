"""The blend of the multilingual and the English encoder, in the vectors themselves."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import pytest

from shopstream_responder.encoding import BlendedEncoder

pytestmark = pytest.mark.unit


class SeededEncoder:
    """A unit vector per (encoder, text), from a seed: two instances disagree on every text."""

    revision = "test"

    def __init__(self, model_id: str, dim: int) -> None:
        self.model_id = model_id
        self.dim = dim

    def load(self) -> None:
        return None

    def unload(self) -> None:
        return None

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: Literal["query", "passage"] = "query",
        batch_size: int = 32,
    ) -> npt.NDArray[np.float32]:
        rows = []
        for text in texts:
            seed = zlib.crc32(f"{self.model_id}:{text}".encode())
            row = np.random.default_rng(seed).normal(size=self.dim)
            rows.append(row / np.linalg.norm(row))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)


MAIN = SeededEncoder("multilingual", 8)
ENGLISH = SeededEncoder("english", 6)
DOCUMENTS = ["Returns are free within 30 days.", "退货三十天内免费。"]


def _cosines(encoder: SeededEncoder, question: str) -> npt.NDArray[np.float32]:
    result: npt.NDArray[np.float32] = encoder.encode(DOCUMENTS) @ encoder.encode([question])[0]
    return result


@pytest.mark.parametrize("weight", [0.3, 0.5, 0.8])
def test_english_questions_score_the_weighted_blend_of_both_cosines(weight: float) -> None:
    blended = BlendedEncoder(MAIN, ENGLISH, english_weight=weight, batch_size=4)
    documents = blended.documents(DOCUMENTS, "passage")
    [vectors] = blended.questions(["can I return it?"], ["en"])
    expected = (1 - weight) * _cosines(MAIN, "can I return it?") + weight * _cosines(
        ENGLISH, "can I return it?"
    )
    assert vectors.blended
    np.testing.assert_allclose(documents @ vectors.retrieval, expected, atol=1e-6)
    np.testing.assert_allclose(vectors.features, vectors.retrieval)
    np.testing.assert_allclose(vectors.intent, MAIN.encode(["can I return it?"])[0])


def test_other_languages_score_the_multilingual_cosine_alone() -> None:
    blended = BlendedEncoder(MAIN, ENGLISH, english_weight=0.5, batch_size=4)
    documents = blended.documents(DOCUMENTS, "passage")
    [vectors] = blended.questions(["可以退货吗？"], ["zh"])
    assert not vectors.blended
    np.testing.assert_allclose(
        documents @ vectors.retrieval, _cosines(MAIN, "可以退货吗？"), atol=1e-6
    )
    # The classifier still sees the question the way the documents were embedded.
    assert vectors.features.shape == documents.shape[1:]
    assert not np.allclose(vectors.features, vectors.retrieval)


def test_without_an_english_encoder_every_vector_is_the_multilingual_one() -> None:
    alone = BlendedEncoder(MAIN, None, english_weight=0.5, batch_size=4)
    documents = alone.documents(DOCUMENTS, "passage")
    np.testing.assert_allclose(documents, MAIN.encode(DOCUMENTS))
    [vectors] = alone.questions(["can I return it?"], ["en"])
    assert not vectors.blended
    np.testing.assert_allclose(vectors.retrieval, MAIN.encode(["can I return it?"])[0])
    assert alone.revision == "test"
    with pytest.raises(ValueError, match="weight"):
        BlendedEncoder(MAIN, ENGLISH, english_weight=1.0, batch_size=4)
