"""`shopstream broker up|down|status|logs|reset`: the local Apache Kafka broker."""

from __future__ import annotations

import dataclasses
from collections import deque
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from shopstream.devbroker import BrokerSecurity, LocalBrokerConfig, LocalBrokerError, ScramUser
from shopstream.devbroker import broker as local_broker
from shopstream.devbroker import security as broker_security
from shopstream.services import discover

app = typer.Typer(help="Run a real single-node Apache Kafka (KRaft) broker on 127.0.0.1.")
console = Console()

Port = Annotated[int, typer.Option(help="Client port on 127.0.0.1.")]
ControllerPort = Annotated[int, typer.Option(help="KRaft controller port on 127.0.0.1.")]
Sasl = Annotated[
    bool,
    typer.Option(
        help="SASL/SCRAM-SHA-512 client listener with ACLs (StandardAuthorizer); creates an admin "
        "and one user per service and writes their client settings to client.env."
    ),
]
Tls = Annotated[bool, typer.Option(help="With --sasl: SASL_SSL with a self-signed certificate.")]


def config_for(port: int, controller_port: int) -> LocalBrokerConfig:
    return LocalBrokerConfig(port=port, controller_port=controller_port)


def secured(config: LocalBrokerConfig, *, tls: bool) -> LocalBrokerConfig:
    """The config with an admin and one SCRAM user per service, passwords kept in the run dir."""
    services = tuple(discover())
    users = broker_security.load_or_create_users(
        config.run_dir / "scram-users.json", ("admin", *services)
    )
    security = BrokerSecurity(
        admin=ScramUser("admin", users["admin"]),
        users=tuple(ScramUser(name, users[name]) for name in services),
        tls=tls,
    )
    return dataclasses.replace(config, security=security)


def write_client_env(config: LocalBrokerConfig) -> Path:
    """`SHOPSTREAM_KAFKA__*` for the admin and `<SERVICE>_KAFKA__*` for each service's user."""
    assert config.security is not None
    lines = []
    for prefix, user in [
        ("SHOPSTREAM", config.security.admin),
        *((user.name.upper(), user) for user in config.security.users),
    ]:
        kafka = config.kafka_settings(user)
        values = {
            "BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "SECURITY_PROTOCOL": kafka.security_protocol,
            "SASL_MECHANISM": kafka.sasl_mechanism,
            "SASL_USERNAME": user.name,
            "SASL_PASSWORD": user.password,
            "SSL_CAFILE": str(kafka.ssl_cafile or ""),
        }
        lines += [f"{prefix}_KAFKA__{name}={value}" for name, value in values.items() if value]
        if prefix != "SHOPSTREAM":
            lines.append(f"{prefix}_CREATE_TOPICS=false")  # topics are the admin's job
    path = config.run_dir / "client.env"
    path.touch(mode=0o600)
    path.write_text("\n".join(lines) + "\n")
    return path


@app.command()
def up(
    port: Port = 9092, controller_port: ControllerPort = 9093, sasl: Sasl = False, tls: Tls = False
) -> None:
    """Start the broker (fetching Kafka's jars once) and wait until it accepts connections."""
    if tls and not sasl:
        raise typer.BadParameter("--tls needs --sasl")
    config = config_for(port, controller_port)
    if sasl:
        config = secured(config, tls=tls)
    try:
        with console.status("fetching Kafka jars (once) and starting the broker..."):
            local_broker.ensure_jars(config, progress=console.log)
            status = local_broker.start(config)
    except LocalBrokerError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from error
    if config.security is not None:
        console.print(
            f"{config.security.listener} with ACLs; client settings (secrets, mode 0600): "
            f"{write_client_env(config)}; then `shopstream topics create` and "
            "`shopstream acls apply SERVICE...` with that file in the environment"
        )
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
