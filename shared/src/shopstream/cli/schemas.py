"""`shopstream schemas export|check`: the event contract as JSON Schema files."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from shopstream.events import EVENT_CLASSES
from shopstream.schemas import breaking_changes, export_all, schema_of, schema_path

app = typer.Typer(help="Export the event contract as JSON Schema and check compatibility.")
console = Console()


@app.command()
def export() -> None:
    """Write every event type's schema into the package's `schemas/` folder."""
    for path in export_all():
        console.print(f"wrote {path}")


@app.command()
def check() -> None:
    """Fail when an event model breaks its committed schema without a version bump."""
    failures = 0
    for event_class in EVENT_CLASSES:
        path = schema_path(event_class)
        if not path.exists():
            console.print(f"[red]{path.name}: not exported[/red]")
            failures += 1
            continue
        problems = breaking_changes(json.loads(path.read_text("utf-8")), schema_of(event_class))
        for problem in problems:
            console.print(f"[red]{path.name}[/red]: {problem}")
        failures += bool(problems)
    if failures:
        raise typer.Exit(1)
    console.print(f"{len(EVENT_CLASSES)} event schemas are backward compatible")
