"""Steering decoding away from phrases, with the real Qwen tokenizer and model."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from shopstream.models import DEFAULT_GENERATOR, TextGenerator, resolve
from shopstream.models.phrase_ban import PhraseBan, PhraseVocabulary

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def vocabulary(converted_generator: TextGenerator) -> tuple[PhraseVocabulary, object]:
    tokenizer = AutoTokenizer.from_pretrained(resolve(DEFAULT_GENERATOR).location)
    return PhraseVocabulary(tokenizer), tokenizer


def test_every_token_holding_a_chinese_phrase_is_masked_for_its_row_only(
    vocabulary: tuple[PhraseVocabulary, object],
) -> None:
    phrases, tokenizer = vocabulary
    holding = phrases.tokens_for("透气")
    assert holding, "the vocabulary has tokens that contain 透气"
    ban = PhraseBan(phrases, [["透气"], []], prompt_length=1)
    scores = ban(torch.zeros((2, 1), dtype=torch.long), torch.zeros((2, len(tokenizer))))  # type: ignore[arg-type]
    assert torch.isinf(scores[0, sorted(holding)]).all()
    assert not torch.isinf(scores[1]).any(), "the other row is not steered"


def test_the_last_token_of_a_multi_token_spelling_is_masked_after_its_prefix(
    vocabulary: tuple[PhraseVocabulary, object],
) -> None:
    phrases, tokenizer = vocabulary
    [sequence, *_] = [ids for ids in phrases.sequences_for("breathable") if len(ids) > 1]
    ban = PhraseBan(phrases, [["breathable"]], prompt_length=0)
    width = len(tokenizer)
    after_prefix = ban(torch.tensor([sequence[:-1]]), torch.zeros((1, width)))  # type: ignore[arg-type]
    assert torch.isinf(after_prefix[0, sequence[-1]])
    elsewhere = ban(torch.tensor([[sequence[-1]]]), torch.zeros((1, width)))  # type: ignore[arg-type]
    assert not torch.isinf(elsewhere[0, sequence[-1]]), "only right after the prefix"


def test_generation_avoids_the_banned_phrases(converted_generator: TextGenerator) -> None:
    generator = TextGenerator(DEFAULT_GENERATOR)
    generator.load()
    try:
        prompts = [
            "写一句话介绍一件透气、防水的外套。",
            "One sentence about a breathable, waterproof jacket.",
        ]
        banned = [["透气", "防水"], ["breathable", "waterproof"]]
        free = generator.generate(prompts, max_new_tokens=32)
        steered = generator.generate(prompts, max_new_tokens=32, banned_phrases=banned)
        print(free, steered)
        assert any(
            term in text.casefold()
            for text, terms in zip(free, banned, strict=True)
            for term in terms
        ), "without the ban the model repeats the prompt's words (else this test proves nothing)"
        for text, terms in zip(steered, banned, strict=True):
            assert not any(term in text.casefold() for term in terms), text
    finally:
        generator.unload()
