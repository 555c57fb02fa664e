"""Figures measured by tests, collected for docs/reliability.md."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS_FILE = Path(__file__).parents[2] / "bench" / "results" / "faults.json"


def record(name: str, figures: dict[str, float]) -> None:
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(RESULTS_FILE.read_text()) if RESULTS_FILE.exists() else {}
    existing[name] = figures
    RESULTS_FILE.write_text(json.dumps(existing, indent=2))
