"""Figures measured by tests, collected for docs/reliability.md."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS_DIR = Path(__file__).parents[2] / "bench" / "results"


def record(name: str, figures: dict[str, float], *, results: str = "faults") -> None:
    """Store `figures` under `name` in `bench/results/<results>.json`, keeping other entries."""
    path = RESULTS_DIR / f"{results}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(path.read_text()) if path.exists() else {}
    existing[name] = figures
    path.write_text(json.dumps(existing, indent=2) + "\n")
