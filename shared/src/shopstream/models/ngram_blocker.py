"""No repeated n-grams within a completion, checked incrementally.

transformers' ``no_repeat_ngram_size`` looks at the whole sequence, prompt included, and
rebuilds every row's n-gram table at every step in Python. For grounded generation both are
wrong: it forbids copying any n-gram of the prompt (a three-token product name, "100 % cotton")
into the answer, and its cost grows with the prompt (SmolLM2, batch 8, 32 new tokens, a short
prompt: 13.4 s with it vs 4.1 s without, on the shared 2-core machine). This processor only
blocks an n-gram the completion itself already produced, and records one n-gram per row per step.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor


class CompletionNgramBlocker(LogitsProcessor):
    def __init__(self, size: int, prompt_length: int) -> None:
        if size < 1:
            raise ValueError("n-gram size must be at least 1")
        self.size = size
        self.prompt_length = prompt_length
        self._seen: list[dict[tuple[int, ...], set[int]]] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows, length = input_ids.shape
        if not self._seen:
            self._seen = [{} for _ in range(rows)]
        generated = length - self.prompt_length
        if generated >= self.size:
            # The n-gram that the last generated token completed.
            for row, gram in enumerate(input_ids[:, length - self.size :].tolist()):
                self._seen[row].setdefault(tuple(gram[:-1]), set()).add(gram[-1])
        if generated >= self.size - 1:
            width = self.size - 1
            prefixes = input_ids[:, length - width :].tolist() if width else [[]] * rows
            for row, prefix in enumerate(prefixes):
                banned = self._seen[row].get(tuple(prefix))
                if banned:
                    scores[row, list(banned)] = -float("inf")
        return scores
