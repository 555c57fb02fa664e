"""`shopstream dlq inspect|replay`: what failed, why, and sending it back after a fix."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shopstream import dlq
from shopstream.kafka_io import read_topic
from shopstream.settings import ShopstreamSettings

app = typer.Typer(help="Inspect and replay dead-letter topics (`<input topic>.dlq`).")
console = Console()

Topic = Annotated[str, typer.Argument(help="A dead-letter topic, e.g. shop.reviews.submitted.dlq")]


@app.command()
def inspect(
    topic: Topic,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 20,
) -> None:
    """Summarise a dead-letter topic by reason and show the latest letters."""
    settings = ShopstreamSettings()

    async def read() -> list[bytes]:
        return [value async for _key, value, _headers in read_topic(settings.kafka, topic)]

    try:
        values = asyncio.run(read())
    except LookupError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    letters = [letter for value in values if (letter := dlq.parse_letter(value)) is not None]
    reasons = Counter(letter.payload.reason for letter in letters)
    summary = Table("reason", "letters", title=f"{topic}: {len(letters)} dead letters")
    for reason, count in reasons.most_common():
        summary.add_row(reason, str(count))
    console.print(summary)
    latest = Table("failed at", "tenant", "origin", "reason", "error", "replays")
    for letter in letters[-limit:]:
        payload = letter.payload
        latest.add_row(
            payload.last_failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            letter.tenant_id,
            f"{payload.original_topic}[{payload.original_partition}]@{payload.original_offset}",
            payload.reason,
            f"{payload.error_class}: {payload.error_message[:80]}",
            str(payload.replays),
        )
    console.print(latest)
    if len(values) != len(letters):
        console.print(f"[yellow]{len(values) - len(letters)} records are not dead letters[/yellow]")


@app.command("replay")
def replay_command(
    topic: Topic,
    rate: Annotated[float, typer.Option(help="Records per second, at most.")] = 100.0,
    max_replays: Annotated[
        int, typer.Option(help="Skip letters already replayed this many times.")
    ] = 3,
    reason: Annotated[str | None, typer.Option(help="Only letters with this reason.")] = None,
) -> None:
    """Send dead letters back to their original topic (after the cause is fixed)."""
    settings = ShopstreamSettings()
    report = asyncio.run(
        dlq.replay(settings.kafka, topic, rate=rate, max_replays=max_replays, reason=reason)
    )
    console.print(
        f"replayed {report.replayed}; skipped {report.skipped_exhausted} at the replay limit, "
        f"{report.skipped_filtered} by reason filter; {report.unreadable} unreadable"
    )
    for original, count in report.by_topic.items():
        console.print(f"  {count} -> {original}")
