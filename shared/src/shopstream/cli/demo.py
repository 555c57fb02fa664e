"""`shopstream demo` and `shopstream run SERVICE`."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shopstream.devbroker import LocalBrokerConfig
from shopstream.devbroker import broker as local_broker
from shopstream.echo import EchoSettings, build_echo_service
from shopstream.events import ReviewSubmitted
from shopstream.kafka_io import publish_events, results_of
from shopstream.logs import configure_logging
from shopstream.services import DemoOptions, discover, serve, service_spec
from shopstream.settings import KafkaSettings

console = Console()


def run_service(
    name: Annotated[str, typer.Argument(help="An installed service, e.g. sentiment or echo.")],
) -> None:
    """Run one service in the foreground until SIGTERM/Ctrl-C (settings from its env prefix)."""
    try:
        service_spec(name)
    except LookupError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    serve(name)


def sample_reviews(count: int) -> list[ReviewSubmitted]:
    texts = ["Arrived quickly, works as described.", "质量很好，物流也快。", "Broke after a week."]
    return [
        ReviewSubmitted(
            tenant_id="demo-shop",
            payload={
                "review_id": f"r{index}",
                "product_id": f"p{index % 5}",
                "text": texts[index % len(texts)],
            },
        )
        for index in range(count)
    ]


async def echo_round_trip(kafka: KafkaSettings, count: int) -> dict[str, Any]:
    # Topics of its own, so the echo step's reviews never reach the sentiment service.
    settings = EchoSettings(
        kafka=kafka, http_port=0, input_topic="shop.demo.echo-in", output_topic="shop.demo.echo"
    )
    service = build_echo_service(settings)
    await service.start()
    try:
        events = sample_reviews(count)
        started = time.perf_counter()
        await publish_events(kafka, settings.input_topic, events)
        seen = await results_of(
            kafka, settings.output_topic, events, within=60.0, idle_timeout=20.0
        )
        seconds = time.perf_counter() - started
        return {
            "sent": len(events),
            "echoed": len(seen),
            "seconds": seconds,
            "metrics_port": service.health.port,
            "examples": list(seen.values())[:3],
        }
    finally:
        await service.stop()


def demo(
    keep_running: Annotated[
        bool,
        typer.Option(help="Leave the broker and the sentiment service running afterwards."),
    ] = False,
    events: Annotated[
        int, typer.Option(help="Events for the first step, the echo round trip (0 skips it).")
    ] = 20,
    rate: Annotated[
        float, typer.Option(min=1, help="Reviews per second the sample shop publishes.")
    ] = 50.0,
    metrics_port: Annotated[
        int, typer.Option(help="Port of the sentiment service's /metrics (0: any free port).")
    ] = 0,
    also: Annotated[
        str,
        typer.Option(help="Further service demos after sentiment, comma-separated ('' for none)."),
    ] = "recommender,responder,describer",
) -> None:
    """Start a real local Kafka broker and push a sample shop's reviews through shopstream.

    Step 1 round-trips a few events through the echo service (the bus alone); step 2 runs the
    sentiment service on 200 Chinese and English reviews and prints the product insights.
    """
    began = time.perf_counter()
    configure_logging("WARNING", json_output=False)
    # Topics created a moment ago answer "not leader" until their leaders are elected, and
    # aiokafka logs every retry; the demo checks and reports the outcome itself.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    config = LocalBrokerConfig()
    with console.status("starting the local Kafka broker (jars fetched once)..."):
        local_broker.ensure_jars(config)
        status = local_broker.start(config)
    started_here = not status.already_running
    console.print(
        f"[green]Kafka[/green] on {status.bootstrap_servers}"
        + (f" (started in {status.startup_seconds:.1f} s)" if started_here else " (already up)")
    )
    kafka = KafkaSettings(bootstrap_servers=status.bootstrap_servers)
    try:
        if events > 0:
            show_echo(asyncio.run(echo_round_trip(kafka, events)))
        options = DemoOptions(
            console, kafka, rate=rate, metrics_port=metrics_port, keep_running=keep_running
        )
        steps = ["sentiment", *filter(None, (part.strip() for part in also.split(",")))]
        failed: list[str] = []
        for index, name in enumerate(steps):
            # Only the first step may keep its service running or take the asked-for port.
            step_options = (
                options
                if index == 0
                else dataclasses.replace(options, metrics_port=0, keep_running=False)
            )
            if not run_demo_step(name, step_options):
                failed.append(name)
        if failed:
            console.print(f"[red]demo steps that did not finish: {', '.join(failed)}[/red]")
            raise typer.Exit(1)
        console.print(f"demo took {time.perf_counter() - began:.0f} s in all")
    finally:
        if started_here and not keep_running:
            local_broker.stop(config)
            console.print("broker stopped (use --keep-running to leave it up)")


def run_demo_step(name: str, options: DemoOptions) -> bool:
    """Run one service's own demo step (each lives in its service package, named by its spec)."""
    specs = discover()
    step = specs[name].demo_step() if name in specs else None
    if step is None:
        known = [spec for spec, found in specs.items() if found.demo is not None]
        console.print(f"[red]no demo step {name!r}[/red]; known: {', '.join(known)}")
        raise typer.Exit(2)
    console.rule(f"{name} service")
    return asyncio.run(step(options))


def show_echo(result: dict[str, Any]) -> None:
    table = Table("review", "tenant", "product", "result event id", title="step 1: echo")
    for example in result["examples"]:
        payload = example["payload"]
        table.add_row(
            payload["text"], example["tenant_id"], payload["product_id"], example["event_id"]
        )
    console.print(table)
    console.print(
        f"echo service: {result['echoed']}/{result['sent']} events round-tripped through "
        f"Kafka in {result['seconds']:.2f} s"
    )
    if result["echoed"] != result["sent"]:
        raise typer.Exit(1)
