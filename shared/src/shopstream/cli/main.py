"""Entry point: `shopstream broker|topics|acls|publish|tail|dlq|schemas|eval|demo|run ...`."""

from __future__ import annotations

import importlib
import importlib.util

import typer

from shopstream.cli import acls, broker, demo, dlq, schemas, stream, topics

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

eval_app = typer.Typer(help="Measure a service's quality on your own data.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

# Commands that live in the service packages; each is registered when its package is installed.
# Their modules import torch lazily, inside the commands, so the CLI stays quick to start.
SERVICE_COMMANDS = (
    ("sentiment", "train", "shopstream_sentiment.cli:train"),
    ("eval", "sentiment", "shopstream_sentiment.cli:evaluate"),
    ("recommender", "train", "shopstream_recommender.cli:train"),
    ("eval", "recommender", "shopstream_recommender.cli:evaluate"),
    ("eval", "responder", "shopstream_responder.cli:evaluate"),
    ("responder", "gaps", "shopstream_responder.cli:gaps"),
    ("eval", "describer", "shopstream_describer.cli:evaluate"),
    ("describer", "tune", "shopstream_describer.cli:tune"),
    ("describer", "export-adapter", "shopstream_describer.cli:export_adapter"),
)
service_groups: dict[str, typer.Typer] = {"eval": eval_app}
for group, command, target in SERVICE_COMMANDS:
    module_name, function_name = target.split(":")
    package = module_name.split(".", 1)[0]
    if importlib.util.find_spec(package) is None or importlib.util.find_spec(module_name) is None:
        continue
    function = getattr(importlib.import_module(module_name), function_name, None)
    if function is None:  # a service may offer `eval` without `train`
        continue
    if group not in service_groups:
        service_groups[group] = typer.Typer(help=f"The {group} service.", no_args_is_help=True)
        app.add_typer(service_groups[group], name=group)
    service_groups[group].command(command)(function)
