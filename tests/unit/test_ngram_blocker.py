"""The completion-only n-gram blocker: prompt n-grams may be copied, own repeats may not."""

from __future__ import annotations

import pytest
import torch

from shopstream.models.ngram_blocker import CompletionNgramBlocker

pytestmark = pytest.mark.unit


def step(blocker: CompletionNgramBlocker, tokens: list[int]) -> torch.Tensor:
    return blocker(torch.tensor([tokens]), torch.zeros(1, 10))


def test_only_the_completions_own_ngrams_are_blocked() -> None:
    prompt = [1, 2, 3, 1, 2]  # "1 2 3" occurs in the prompt: copying it stays allowed
    blocker = CompletionNgramBlocker(3, prompt_length=len(prompt))
    assert torch.isfinite(step(blocker, prompt)).all()
    completion = [1, 2, 3, 4, 1, 2]  # the completion wrote "1 2 3"; after "1 2" again, 3 is out
    for length in range(1, len(completion)):
        step(blocker, prompt + completion[:length])
    scores = step(blocker, prompt + completion)
    assert scores[0, 3] == -float("inf")
    assert torch.isfinite(scores[0, [0, 1, 2, 4, 5]]).all()


def test_rows_are_tracked_apart() -> None:
    blocker = CompletionNgramBlocker(2, prompt_length=1)
    batch = [[0, 5, 6, 5], [0, 7, 8, 9]]
    for length in range(2, 5):
        scores = blocker(torch.tensor([row[:length] for row in batch]), torch.zeros(2, 10))
    assert scores[0, 6] == -float("inf"), "row 0 wrote 5 6, then 5 again"
    assert torch.isfinite(scores[1]).all()
