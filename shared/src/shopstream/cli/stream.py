"""`shopstream publish` and `shopstream tail`: put events on a topic and watch a topic."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress

from shopstream.events import Event, any_event_adapter
from shopstream.kafka_io import publish_events, read_topic
from shopstream.settings import ShopstreamSettings

console = Console()


def load_events(path: Path) -> tuple[list[Event], list[tuple[int, str]]]:
    """Validate every line; return the events and the (line number, error) of bad lines."""
    events: list[Event] = []
    errors: list[tuple[int, str]] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                events.append(any_event_adapter.validate_json(line))
            except ValidationError as error:
                first = error.errors(include_url=False, include_input=False)[0]
                where = ".".join(str(part) for part in first["loc"]) or "<line>"
                errors.append((number, f"{where}: {first['msg']}"))
    return events, errors


def publish(
    topic: Annotated[str, typer.Argument(help="Topic to publish to.")],
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSON Lines of events.")
    ],
    skip_invalid: Annotated[
        bool, typer.Option(help="Send the valid lines even if some are bad.")
    ] = False,
) -> None:
    """Validate every line of FILE as a shopstream event, then publish them keyed by entity."""
    events, errors = load_events(file)
    for number, message in errors[:20]:
        console.print(f"[red]line {number}[/red]: {message}")
    if len(errors) > 20:
        console.print(f"... and {len(errors) - 20} more bad lines")
    if errors and not skip_invalid:
        console.print(f"[red]{len(errors)} invalid line(s); nothing sent[/red] (--skip-invalid)")
        raise typer.Exit(2)
    settings = ShopstreamSettings()
    started = time.perf_counter()
    chunk = 1_000
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"publishing to {topic}", total=len(events))
        for start in range(0, len(events), chunk):
            part = events[start : start + chunk]
            asyncio.run(publish_events(settings.kafka, topic, part))
            progress.advance(task, len(part))
    seconds = time.perf_counter() - started
    console.print(f"published {len(events)} event(s) to {topic} in {seconds:.2f} s")


def tail(
    topic: Annotated[str, typer.Argument(help="Topic to read.")],
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's events.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep waiting for new events.")
    ] = False,
    from_beginning: Annotated[
        bool, typer.Option(help="Start at the oldest retained record.")
    ] = True,
    limit: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
) -> None:
    """Print a topic's events, pretty and optionally filtered by tenant."""
    settings = ShopstreamSettings()

    async def run() -> int:
        shown = 0
        async for _key, value, headers in read_topic(
            settings.kafka,
            topic,
            from_beginning=from_beginning,
            idle_timeout=None if follow else 3.0,
        ):
            header_map = {name: raw.decode("utf-8", "replace") for name, raw in headers}
            try:
                document = json.loads(value)
            except ValueError:
                document = {"undecodable": value[:200].decode("utf-8", "replace")}
            record_tenant = header_map.get("tenant_id") or document.get("tenant_id")
            if tenant is not None and record_tenant != tenant:
                continue
            console.rule(f"{document.get('event_type', '?')} · {record_tenant}")
            console.print_json(data=document)
            shown += 1
            if limit is not None and shown >= limit:
                break
        return shown

    try:
        shown = asyncio.run(run())
    except LookupError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    except KeyboardInterrupt:
        return
    console.print(f"{shown} event(s)")
