"""Describer quality bars on a slice of ../shared/data/describer (composer path, no model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopstream_describer.compliance import Lexicons
from shopstream_describer.evaluation import evaluate_rows, read_rows
from shopstream_describer.pipeline import DescriberPipeline

pytestmark = pytest.mark.eval

DATA = Path(__file__).parents[2].parent / "shared" / "data" / "describer"


@pytest.mark.parametrize("name", ["advertisegen_zh.jsonl", "myntra_en.jsonl"])
def test_clean_outputs_meet_the_bars(name: str) -> None:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    rows = list(read_rows(path, limit=60))
    result = evaluate_rows(rows, DescriberPipeline(None), Lexicons().default)
    assert result["clean_unsupported_claims"] == 0
    assert result["clean_compliance_findings"] == 0
    assert result["attribute_coverage"] >= 0.8
    assert result["clean_share"] > 0.9
    # The checker is not blind: human-written references do make claims it cannot ground.
    assert result["reference_unsupported_per_text"] > 0.3
