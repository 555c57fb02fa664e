"""Entry point: `shopstream broker|topics|publish|tail|demo|run|bench ...`."""

from __future__ import annotations

import typer

from shopstream.cli import broker, demo, dlq, schemas, stream, topics

app = typer.Typer(
    help="shopstream: language models on an e-commerce Kafka event stream.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(broker.app, name="broker")
app.add_typer(topics.app, name="topics")
app.add_typer(schemas.app, name="schemas")
app.add_typer(dlq.app, name="dlq")
app.command("publish")(stream.publish)
app.command("tail")(stream.tail)
app.command("demo")(demo.demo)
app.command("run")(demo.run_service)
