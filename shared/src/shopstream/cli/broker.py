"""`shopstream broker up|down|status|logs|reset`: the local Apache Kafka broker."""

from __future__ import annotations

from collections import deque
from typing import Annotated

import typer
from rich.console import Console

from shopstream import local_broker
from shopstream.local_broker import LocalBrokerConfig, LocalBrokerError

app = typer.Typer(help="Run a real single-node Apache Kafka (KRaft) broker on 127.0.0.1.")
console = Console()

Port = Annotated[int, typer.Option(help="Client port on 127.0.0.1.")]
ControllerPort = Annotated[int, typer.Option(help="KRaft controller port on 127.0.0.1.")]


def config_for(port: int, controller_port: int) -> LocalBrokerConfig:
    return LocalBrokerConfig(port=port, controller_port=controller_port)


@app.command()
def up(port: Port = 9092, controller_port: ControllerPort = 9093) -> None:
    """Start the broker (fetching Kafka's jars once) and wait until it accepts connections."""
    config = config_for(port, controller_port)
    try:
        with console.status("fetching Kafka jars (once) and starting the broker..."):
            local_broker.ensure_jars(config, progress=console.log)
            status = local_broker.start(config)
    except LocalBrokerError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from error
    if status.already_running:
        console.print(f"broker already running on {status.bootstrap_servers} (pid {status.pid})")
        return
    console.print(
        f"[green]broker up[/green] on {status.bootstrap_servers} (pid {status.pid}), "
        f"started in {status.startup_seconds:.1f} s; logs: {local_broker.log_path(config)}"
    )


@app.command()
def down(port: Port = 9092, controller_port: ControllerPort = 9093) -> None:
    """Stop the broker cleanly (SIGTERM, then SIGKILL after a timeout)."""
    was_running = local_broker.stop(config_for(port, controller_port))
    console.print("broker stopped" if was_running else "broker was not running")


@app.command()
def status(port: Port = 9092, controller_port: ControllerPort = 9093) -> None:
    """Say whether the broker runs, where, and under which pid."""
    current = local_broker.status(config_for(port, controller_port))
    if current.running:
        console.print(f"running on {current.bootstrap_servers} (pid {current.pid})")
    else:
        console.print("not running")
        raise typer.Exit(3)


@app.command()
def logs(
    port: Port = 9092,
    controller_port: ControllerPort = 9093,
    lines: Annotated[int, typer.Option(help="How many of the last lines to print.")] = 50,
) -> None:
    """Print the end of the broker's log."""
    path = local_broker.log_path(config_for(port, controller_port))
    if not path.exists():
        console.print(f"no log yet at {path}")
        raise typer.Exit(1)
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in deque(handle, maxlen=lines):
            console.out(line.rstrip("\n"), highlight=False)


@app.command()
def reset(port: Port = 9092, controller_port: ControllerPort = 9093) -> None:
    """Stop the broker and delete its data (a fresh, empty cluster on the next `up`)."""
    local_broker.reset(config_for(port, controller_port))
    console.print("broker stopped and its data deleted")
