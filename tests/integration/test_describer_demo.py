"""The describer's demo step on a real broker with the default generator: the zh and en texts go
through the model and arrive with their quality reports, and a second run shows the unchanged
products' current texts instead of waiting for new ones."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from shopstream.settings import KafkaSettings
from shopstream_describer.config import DEFAULT_GENERATOR
from shopstream_describer.demo import run_describer_demo

pytestmark = [pytest.mark.integration, pytest.mark.model]

DEMO_ENVIRONMENT = (
    "DESCRIBER_MODEL__GENERATOR",
    "DESCRIBER_MODEL__LANGUAGES",
    "DESCRIBER_MODEL__DESCRIPTION_TOKENS",
    "DESCRIBER_MODEL__COPY_TOKENS",
)


def _assert_report_invariants(quality: dict[str, Any]) -> None:
    assert quality["path"] in {"generated", "regenerated", "repaired", "composed"}
    assert 0.0 <= quality["attribute_coverage"] <= 1.0
    # The model was asked first: a composer-only text would say 0 attempts.
    assert quality["attempts"] >= 1
    if quality["path"] == "repaired":
        assert quality["review_required"]
    if not quality["review_required"]:  # clean: nothing unsupported, nothing non-compliant
        assert quality["unsupported_claims"] == []
        assert quality["compliance_findings"] == []


async def test_demo_step_writes_zh_and_en_with_the_model_and_shows_the_reports(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in DEMO_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    console = Console(record=True, width=220)
    first = await run_describer_demo(console, kafka, within_seconds=900)
    assert first.generator == DEFAULT_GENERATOR
    assert first.descriptions == first.expected == 6
    assert {locale for _, locale in first.described} == {"en", "zh"}
    assert sorted(first.copies) == ["double-11", "trail-season"]
    assert {copy["payload"]["locale"] for copy in first.copies.values()} == {"en", "zh"}
    assert first.variants == first.expected_variants == 4
    documents = [*first.described.values(), *first.copies.values()]
    for document in documents:
        assert document["lineage"]["model_id"] == DEFAULT_GENERATOR
    qualities = [document["payload"]["quality"] for document in first.described.values()]
    qualities += [
        variant["quality"]
        for copy in first.copies.values()
        for variant in copy["payload"]["variants"]
    ]
    for quality in qualities:
        _assert_report_invariants(quality)
    assert first.clean_with_problems == 0
    assert first.review_required == sum(quality["review_required"] for quality in qualities)
    assert first.generation_seconds > 0

    again = await run_describer_demo(console, kafka, within_seconds=900)
    assert again.descriptions == again.expected
    assert again.variants == again.expected_variants
    output = console.export_text()
    for shown in ("bottle-750", "cup-500", "double-11", "trail-season", "generation took"):
        assert shown in output
    assert "kept from an earlier run" in output
