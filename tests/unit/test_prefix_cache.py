"""Prefix caching: a batch's shared prompt start run once gives the completions of plain left
padding, on a small randomly initialised Qwen2 in float32 (exact there)."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import DynamicCache, Qwen2Config, Qwen2ForCausalLM

from shopstream.models.batching import pad_batch
from shopstream.models.prefix_cache import (
    GROUP_TOKENS,
    MIN_SHARED_TOKENS,
    PrefixCache,
    common_prefix_length,
    template_batches,
)

PAD = 0
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model() -> Qwen2ForCausalLM:
    torch.manual_seed(3)
    config = Qwen2Config(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    return Qwen2ForCausalLM(config).eval()


def prompts(template_length: int, rests: list[int], seed: int = 1) -> list[list[int]]:
    """Prompts that share a template of ``template_length`` tokens, then differ."""
    rng = random.Random(seed)
    template = [rng.randrange(1, 97) for _ in range(template_length)]
    return [[*template, *(rng.randrange(1, 97) for _ in range(rest))] for rest in rests]


def greedy(
    model: Qwen2ForCausalLM,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    past_key_values: DynamicCache | None = None,
) -> list[list[int]]:
    with torch.inference_mode():
        generated = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=12,
            do_sample=False,
            pad_token_id=PAD,
            past_key_values=past_key_values,
        )
    return [list(map(int, row)) for row in generated[:, input_ids.shape[1] :]]


def test_common_prefix_length() -> None:
    assert common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix_length([[5, 6], [5, 6]]) == 2
    assert common_prefix_length([[1], [2]]) == 0
    assert common_prefix_length([]) == 0


def test_template_batches_keep_one_template_per_batch_longest_first() -> None:
    first = prompts(GROUP_TOKENS, [3, 9, 5], seed=1)
    second = prompts(GROUP_TOKENS, [4, 8], seed=2)
    mixed = [first[0], second[0], first[1], second[1], first[2]]
    batches = template_batches(mixed, batch_size=3)
    assert sorted(sorted(batch) for batch in batches) == [[0, 2, 4], [1, 3]]
    for batch in batches:
        lengths = [len(mixed[index]) for index in batch]
        assert lengths == sorted(lengths, reverse=True)


def test_shared_start_gives_the_completions_of_plain_left_padding(
    model: Qwen2ForCausalLM,
) -> None:
    rows = prompts(MIN_SHARED_TOKENS + 8, [1, 7, 3, 12])
    plain_ids, plain_mask = pad_batch(rows, PAD, side="left")
    expected = greedy(model, plain_ids, plain_mask)
    cache = PrefixCache()
    prepared = cache.batch_inputs(model, rows, PAD, CPU)
    assert prepared is not None
    input_ids, attention_mask, past = prepared
    assert past.get_seq_length() == MIN_SHARED_TOKENS + 8
    assert greedy(model, input_ids, attention_mask, past_key_values=past) == expected
    # The stored start is reused (not recomputed) by the next batch of the same template,
    # and it is still intact after the first batch generated from a copy of it.
    again = cache.batch_inputs(model, rows[:2], PAD, CPU)
    assert again is not None
    assert len(cache) == 1
    assert greedy(model, again[0], again[1], past_key_values=again[2]) == expected[:2]


def test_a_longer_stored_start_is_cut_back_to_what_a_new_batch_shares(
    model: Qwen2ForCausalLM,
) -> None:
    template = MIN_SHARED_TOKENS + 4
    rows = prompts(template, [6, 6, 6])
    cache = PrefixCache()
    # Two prompts that share 3 tokens past the template store a longer start ...
    alike = [rows[0], [*rows[0][: template + 3], 5, 6, 7]]
    assert cache.batch_inputs(model, alike, PAD, CPU) is not None
    # ... which a batch sharing only the template reuses, cut back to the template.
    prepared = cache.batch_inputs(model, rows, PAD, CPU)
    assert prepared is not None
    assert prepared[2].get_seq_length() == template
    assert len(cache) == 1
    plain_ids, plain_mask = pad_batch(rows, PAD, side="left")
    expected = greedy(model, plain_ids, plain_mask)
    assert greedy(model, prepared[0], prepared[1], past_key_values=prepared[2]) == expected


def test_prompts_that_share_little_go_the_plain_way(model: Qwen2ForCausalLM) -> None:
    rows = prompts(MIN_SHARED_TOKENS - 1, [5, 5])
    assert PrefixCache().batch_inputs(model, rows, PAD, CPU) is None
    # A prompt that is all template keeps one token outside the cache.
    whole = prompts(MIN_SHARED_TOKENS + 2, [0, 3])
    prepared = PrefixCache().batch_inputs(model, whole, PAD, CPU)
    assert prepared is not None
    assert prepared[2].get_seq_length() == MIN_SHARED_TOKENS + 1
