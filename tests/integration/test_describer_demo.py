"""The describer's demo step on a real broker: every text arrives with its quality report, and
a second run shows the unchanged products' current texts instead of waiting for new ones."""

from __future__ import annotations

import pytest
from rich.console import Console

from shopstream.settings import KafkaSettings
from shopstream_describer.demo import run_describer_demo

pytestmark = pytest.mark.integration


async def test_demo_step_prints_descriptions_and_copy_with_their_reports(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DESCRIBER_MODEL__GENERATOR", raising=False)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    console = Console(record=True, width=200)
    first = await run_describer_demo(console, kafka, within_seconds=90)
    assert first.descriptions == first.expected == 6
    assert first.variants == 3
    assert first.review_required == 0
    again = await run_describer_demo(console, kafka, within_seconds=90)
    assert again.descriptions == again.expected
    output = console.export_text()
    assert "Trailhead" in output
    assert "316不锈钢" in output
    assert "kept from an earlier run" in output
    assert "clean" in output
