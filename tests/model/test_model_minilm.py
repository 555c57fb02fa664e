"""all-MiniLM-L6-v2 from its PyPI package: English only, no prefixes."""

from __future__ import annotations

import numpy as np
import pytest

from shopstream.models import TextEncoder

pytestmark = pytest.mark.model


def test_loads_offline_with_384_dimensions(minilm_encoder: TextEncoder) -> None:
    vectors = minilm_encoder.encode(["a pair of running shoes"])
    assert minilm_encoder.dim == 384
    assert vectors.shape == (1, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_related_english_pair_scores_higher(minilm_encoder: TextEncoder) -> None:
    query, related, unrelated = minilm_encoder.encode(
        [
            "How long does the battery last?",
            "The headphones run for 30 hours on one charge.",
            "Our shop is closed on public holidays.",
        ]
    )
    print(f"en related {related @ query:.3f} unrelated {unrelated @ query:.3f}")
    assert related @ query > unrelated @ query + 0.1


def test_query_and_passage_are_the_same_without_prefixes(minilm_encoder: TextEncoder) -> None:
    text = ["waterproof hiking boots"]
    np.testing.assert_allclose(
        minilm_encoder.encode(text, kind="query"), minilm_encoder.encode(text, kind="passage")
    )
