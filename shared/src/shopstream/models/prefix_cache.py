"""Prompts that start alike pay for their common start once (prefix caching).

A service's prompts are mostly template: the describer's Chinese prompt is about 330 tokens, of
which the system turn and the instructions (about 250) are the same for every product. On a CPU
the prompt pass is compute-bound, and it took 60 % of a batch's generation time (16 products:
21 of 34 s). So each batch's common start is run once, for one row, and its keys and values are
copied to every row; only the rest of each prompt goes through the model.

Layout: with the usual left padding, prompts would not line up on their common start. Here a
row is ``[common start][padding][rest of its prompt]``; the attention mask hides the padding
and the model's positions follow the mask, so every token keeps the position it has without
padding and the completion is what plain left padding gives (up to float rounding; exact in
float32, see the unit tests).

The common start's cache is kept (a few MB per template) and reused by later batches that start
with it. A batch whose prompts share less than ``MIN_SHARED_TOKENS`` goes the plain way.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import torch
from transformers import DynamicCache

from shopstream.models.batching import length_sorted_batches, pad_batch

MIN_SHARED_TOKENS = 32
"""Below this, a shared start is not worth a cache (a chat template's first tokens are)."""
GROUP_TOKENS = 64
"""Prompts are batched by their first tokens, so one batch holds one template."""


class PrefixModel(Protocol):
    def __call__(
        self,
        *,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        past_key_values: DynamicCache,
        use_cache: bool,
    ) -> object: ...


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every sequence shares."""
    if not sequences:
        return 0
    shortest = min(len(sequence) for sequence in sequences)
    first = sequences[0]
    for position in range(shortest):
        token = first[position]
        if any(sequence[position] != token for sequence in sequences):
            return position
    return shortest


def template_batches(token_ids: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Item indices in batches of prompts that start alike (the same first ``GROUP_TOKENS``):
    no batch mixes two templates (a Chinese and an English prompt share only the chat
    template's first tokens), and within one the longest come first, so that a batch's rests
    are of similar length."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, ids in enumerate(token_ids):
        groups.setdefault(tuple(ids[:GROUP_TOKENS]), []).append(index)
    batches: list[list[int]] = []
    for members in groups.values():
        lengths = [len(token_ids[index]) for index in members]
        batches += [
            [members[position] for position in batch]
            for batch in length_sorted_batches(lengths, batch_size)
        ]
    return batches


class PrefixCache:
    """Keys and values of recent common starts, and the batch inputs that reuse them."""

    def __init__(self, max_entries: int = 8) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[int, ...], DynamicCache] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def batch_inputs(
        self,
        model: PrefixModel,
        sequences: Sequence[Sequence[int]],
        pad_id: int,
        device: torch.device,
    ) -> tuple[torch.Tensor, torch.Tensor, DynamicCache] | None:
        """(input_ids, attention_mask, past_key_values) for ``generate``, or None when the
        prompts share too little. Every row keeps at least one token outside the cache: the
        model must see it to give the first new token's logits."""
        shared = min(common_prefix_length(sequences), min(len(s) for s in sequences) - 1)
        if shared < MIN_SHARED_TOKENS:
            return None
        cached, length = self._cache_for(model, tuple(sequences[0][:shared]), device)
        past = copy.deepcopy(cached)
        past.batch_repeat_interleave(len(sequences))
        # The rests are left-padded as usual; the shared start goes in front of the padding.
        rest_ids, rest_mask = pad_batch(
            [sequence[length:] for sequence in sequences], pad_id, side="left"
        )
        start = torch.tensor([sequences[0][:length]], dtype=torch.long).expand(len(sequences), -1)
        input_ids = torch.cat([start, rest_ids], dim=1).to(device)
        attention_mask = torch.cat([torch.ones_like(start), rest_mask], dim=1).to(device)
        return input_ids, attention_mask, past

    def _cache_for(
        self, model: PrefixModel, prefix: tuple[int, ...], device: torch.device
    ) -> tuple[DynamicCache, int]:
        """A cache of a start of ``prefix`` (the longest kept one, cut back to what this
        prefix shares with it), or a new one of the whole prefix; and its length."""
        best_key: tuple[int, ...] | None = None
        best = 0
        for key in self._entries:
            shared = common_prefix_length((key, prefix))
            if shared > best:
                best_key, best = key, shared
        if best_key is not None and best >= MIN_SHARED_TOKENS:
            cached = self._entries.pop(best_key)
            if best < len(best_key):
                # A batch that shared more than the template (two products with the same
                # title start) stored a longer start: keep only the part this one shares.
                cached.crop(best - len(best_key))
            self._entries[prefix[:best]] = cached
            return cached, best
        cached = DynamicCache()
        with torch.inference_mode():
            model(
                input_ids=torch.tensor([prefix], dtype=torch.long, device=device),
                attention_mask=torch.ones((1, len(prefix)), dtype=torch.long, device=device),
                past_key_values=cached,
                use_cache=True,
            )
        self._entries[prefix] = cached
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return cached, len(prefix)
