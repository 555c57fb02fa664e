"""`shopstream topics create|list`: the topic registry on a cluster."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from shopstream.runtime.admin import ensure_topics
from shopstream.settings import ShopstreamSettings

app = typer.Typer(help="Create and list shopstream's topics (names and layout from settings).")
console = Console()


@app.command()
def create() -> None:
    """Create every missing topic of the registry; existing topics are left as they are."""
    settings = ShopstreamSettings()
    specs = settings.topics.specs()
    created = asyncio.run(ensure_topics(settings.kafka, specs))
    table = Table("topic", "partitions", "cleanup", "status")
    for spec in specs:
        table.add_row(
            spec.name,
            str(spec.partitions),
            "compact" if spec.compacted else f"delete after {spec.retention_ms // 3_600_000} h",
            "[green]created[/green]" if spec.name in created else "exists",
        )
    console.print(table)


@app.command("list")
def list_topics() -> None:
    """Show the registry (what `create` would make) without touching the cluster."""
    table = Table("topic", "partitions", "cleanup")
    for spec in ShopstreamSettings().topics.specs():
        table.add_row(spec.name, str(spec.partitions), "compact" if spec.compacted else "delete")
    console.print(table)
