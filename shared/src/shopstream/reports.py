"""What the services' evaluation commands share: the `--json` report file and the progress bar."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Protocol

import typer
from rich.console import Console
from rich.progress import Progress

JsonReportOption = Annotated[
    Path | None, typer.Option("--json", help="Also write the report as JSON here.")
]
"""An evaluation command's `--json` parameter (default None: no file)."""


def write_json_report(path: Path, report: object, console: Console) -> None:
    """Write `report` to `path` as indented JSON, non-ASCII text kept, and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    console.print(f"wrote {path}")


class ProgressUpdate(Protocol):
    def __call__(self, done: int, total: int | None = None) -> None: ...


@contextmanager
def progress_bar(
    console: Console, description: str, total: int | None = None
) -> Iterator[ProgressUpdate]:
    """A transient bar for a long evaluation; yields `update(done, total=None)`, which the
    evaluations take as their progress callback (a total given late replaces the first)."""
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, total: int | None = None) -> None:
            if total is None:
                bar.update(task, completed=done)
            else:
                bar.update(task, completed=done, total=total)

        yield update
