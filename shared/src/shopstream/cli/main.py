"""Entry point: `shopstream broker|topics|acls|publish|tail|dlq|schemas|eval|demo|run ...`."""

from __future__ import annotations

import typer

from shopstream.cli import acls, broker, demo, dlq, schemas, stream, topics
from shopstream.services import discover, resolve


def build_app() -> typer.Typer:
    """The command line: the core's commands, then each installed service's (from its spec)."""
    app = typer.Typer(
        help="shopstream: language models on an e-commerce Kafka event stream.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
    )
    app.add_typer(broker.app, name="broker")
    app.add_typer(topics.app, name="topics")
    app.add_typer(schemas.app, name="schemas")
    app.add_typer(dlq.app, name="dlq")
    app.add_typer(acls.app, name="acls")
    app.command("publish")(stream.publish)
    app.command("tail")(stream.tail)
    app.command("demo")(demo.demo)
    app.command("run")(demo.run_service)
    groups = {
        "eval": typer.Typer(
            help="Measure a service's quality on your own data.", no_args_is_help=True
        )
    }
    app.add_typer(groups["eval"], name="eval")
    # Their modules import torch lazily, inside the commands, so the CLI stays quick to start.
    for spec in discover().values():
        for command in spec.commands:
            if command.group not in groups:
                groups[command.group] = typer.Typer(
                    help=f"The {command.group} service.", no_args_is_help=True
                )
                app.add_typer(groups[command.group], name=command.group)
            groups[command.group].command(command.name)(resolve(command.target))
    return app


app = build_app()
