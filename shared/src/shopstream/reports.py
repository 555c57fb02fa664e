"""The `--json` report file of the services' evaluation commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

JsonReportOption = Annotated[
    Path | None, typer.Option("--json", help="Also write the report as JSON here.")
]
"""An evaluation command's `--json` parameter (default None: no file)."""


def write_json_report(path: Path, report: object, console: Console) -> None:
    """Write `report` to `path` as indented JSON, non-ASCII text kept, and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    console.print(f"wrote {path}")
