"""Steer decoding away from phrases, per prompt: the describer's unsupported claim terms and
compliance terms. A soft aid, not the gate: a phrase the tokenizer spells another way still gets
through and is caught by the checks afterwards.

A phrase is banned in three ways. Every vocabulary token that contains it (Chinese, where BPE
merges whole runs such as ``最好``) or that is it (a Latin word, with or without its leading
space) is masked at every step; its token sequences (plain, space-prefixed, capitalised) have
their last token masked whenever the completion ends with the rest of the sequence; and for a
Chinese phrase, when the completion's text ends with the phrase's first characters, every token
that starts with the remaining ones is masked (``防`` then ``水性能`` would write 防水).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property

import torch
from transformers import LogitsProcessor
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

_CJK = re.compile(r"[\u3400-\u9fff]")


class PhraseVocabulary:
    """A tokenizer's vocabulary decoded once, to find the tokens that contain a phrase."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer
        # Per phrase, filled on first use: a batch's phrases repeat across batches, and scanning
        # the vocabulary for each of them on every batch would cost seconds per batch.
        self._tokens: dict[str, frozenset[int]] = {}
        self._sequences: dict[str, list[list[int]]] = {}
        self._starting_with: dict[str, torch.Tensor] = {}

    @cached_property
    def _decoded(self) -> list[tuple[int, str]]:
        size = len(self._tokenizer)
        texts = self._tokenizer.batch_decode([[index] for index in range(size)])
        return [(index, text) for index, text in enumerate(texts) if text.strip()]

    @cached_property
    def _cjk(self) -> list[tuple[int, str]]:
        return [(index, text) for index, text in self._decoded if _CJK.search(text)]

    @cached_property
    def _words(self) -> dict[str, list[int]]:
        words: dict[str, list[int]] = {}
        for index, text in self._decoded:
            words.setdefault(text.strip().casefold(), []).append(index)
        return words

    def decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids))

    def tokens_starting_with(self, text: str) -> torch.Tensor:
        found = self._starting_with.get(text)
        if found is None:
            ids = [index for index, token in self._cjk if token.lstrip().startswith(text)]
            found = self._starting_with[text] = torch.tensor(ids, dtype=torch.long)
        return found

    def tokens_for(self, phrase: str) -> frozenset[int]:
        found = self._tokens.get(phrase)
        if found is None:
            if _CJK.search(phrase):
                found = frozenset(index for index, text in self._cjk if phrase in text)
            else:
                found = frozenset(self._words.get(phrase.casefold(), ()))
            self._tokens[phrase] = found
        return found

    def sequences_for(self, phrase: str) -> list[list[int]]:
        found = self._sequences.get(phrase)
        if found is None:
            spellings = {phrase, f" {phrase}", phrase.capitalize(), f" {phrase.capitalize()}"}
            encoded = self._tokenizer(sorted(spellings), add_special_tokens=False)["input_ids"]
            found = self._sequences[phrase] = [list(ids) for ids in encoded if len(ids) > 1]
        return found


class PhraseBan(LogitsProcessor):
    """Mask, per batch row, the tokens that would write one of that row's phrases."""

    def __init__(
        self,
        vocabulary: PhraseVocabulary,
        phrases: Sequence[Sequence[str]],
        prompt_length: int,
    ) -> None:
        self.prompt_length = prompt_length
        self.vocabulary = vocabulary
        self.chinese = [[phrase for phrase in row if _CJK.search(phrase)] for row in phrases]
        self.always: list[torch.Tensor] = []
        self.sequences: list[list[list[int]]] = []
        for row in phrases:
            always: set[int] = set()
            sequences: list[list[int]] = []
            for phrase in row:
                always |= vocabulary.tokens_for(phrase)
                sequences += vocabulary.sequences_for(phrase)
            self.always.append(torch.tensor(sorted(always), dtype=torch.long))
            self.sequences.append(sequences)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        completion = input_ids[:, self.prompt_length :].tolist()
        for row, generated in enumerate(completion):
            banned = self.always[row]
            if banned.numel():
                scores[row, banned.to(scores.device)] = -float("inf")
            for sequence in self.sequences[row]:
                prefix = sequence[:-1]
                if (
                    len(generated) >= len(prefix)
                    and generated[len(generated) - len(prefix) :] == prefix
                ):
                    scores[row, sequence[-1]] = -float("inf")
            if self.chinese[row] and generated:
                self._ban_continuations(row, self.vocabulary.decode(generated[-4:]), scores)
        return scores

    def _ban_continuations(self, row: int, tail: str, scores: torch.FloatTensor) -> None:
        for phrase in self.chinese[row]:
            for split in range(1, len(phrase)):
                if tail.endswith(phrase[:split]):
                    banned = self.vocabulary.tokens_starting_with(phrase[split:])
                    if banned.numel():
                        scores[row, banned.to(scores.device)] = -float("inf")
