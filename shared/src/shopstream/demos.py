"""What the services' demo steps share: their sample data, and a service started in view."""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from shopstream.runtime.service import BatchService


def package_json(package: str, name: str) -> dict[str, Any]:
    """A JSON object shipped in `package`'s ``data`` folder (the demo's sample shop, say)."""
    text = resources.files(package).joinpath("data", name).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


async def start_in_view(console: Console, service: BatchService[Any], doing: str) -> float:
    """Start `service` under a spinner that says what it is `doing`; the seconds it took."""
    began = time.perf_counter()
    with console.status(doing):
        await service.start()
    return time.perf_counter() - began


def metrics_url(service: BatchService[Any]) -> str:
    """Where a demo's local service serves `/metrics`."""
    return f"http://127.0.0.1:{service.health.port}/metrics"


def announce_ready(
    console: Console, service: BatchService[Any], seconds: float, detail: str = ""
) -> None:
    """Say that `service` is ready after `seconds` (`detail`: what that covered, after the
    time) and where its metrics are."""
    console.print(
        f"[green]{service.context.name} service[/green] ready in {seconds:.1f} s{detail}; "
        f"metrics at {metrics_url(service)}"
    )
