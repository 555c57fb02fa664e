"""``shopstream eval responder``: answered share and accuracy on labelled questions.

Registered by the ``shopstream`` CLI; also runnable as ``python -m shopstream_responder.cli``.
torch is imported inside the command, so listing the CLI's help stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from shopstream.events import KnowledgeGapFound
from shopstream.reports import JsonReportOption, progress_bar, write_json_report
from shopstream_responder.config import ResponderSettings

console = Console()


def evaluate(  # noqa: PLR0917 - each typer option is a parameter
    data: Annotated[
        Path, typer.Option(help="CSV (instruction,intent,response) or SQuAD-style JSON.")
    ],
    data_format: Annotated[
        str, typer.Option("--format", help="intents (CSV) or squad (JSON).")
    ] = "intents",
    json_out: JsonReportOption = None,
    limit: Annotated[int | None, typer.Option(help="Answer at most this many questions.")] = None,
    kb_per_intent: Annotated[
        int, typer.Option(help="intents: rows per intent that form its FAQ article.")
    ] = 5,
    unseen_intents: Annotated[
        int, typer.Option(help="intents: intents left out of the knowledge base entirely.")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the knowledge/question split.")] = 13,
    split: Annotated[
        str,
        typer.Option(help="Questions: all, dev (first 30%, for choosing settings) or test (rest)."),
    ] = "all",
    handoff_below: Annotated[
        float | None, typer.Option(help="Confidence threshold (default: the service's).")
    ] = None,
    min_coverage: Annotated[
        float | None,
        typer.Option(help="Coverage probability threshold (default: the service's)."),
    ] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
) -> None:
    """Build a knowledge base from the data, answer its questions as the service would, and
    report answered share, accuracy among answered, hand-offs and accuracy per threshold."""
    from shopstream_responder.evaluation import evaluate_file  # noqa: PLC0415  torch

    if data_format not in ("intents", "squad"):
        raise typer.BadParameter("--format must be intents or squad")
    if split not in ("all", "dev", "test"):
        raise typer.BadParameter("--split must be all, dev or test")
    settings = ResponderSettings()
    updates: dict[str, Any] = {"model": settings.model.model_copy(update={"threads": threads})}
    answering: dict[str, Any] = {}
    if handoff_below is not None:
        answering["handoff_below"] = handoff_below
    if min_coverage is not None:
        answering["coverage"] = settings.answering.coverage.model_copy(
            update={"min_probability": min_coverage}
        )
    if answering:
        updates["answering"] = settings.answering.model_copy(update=answering)
    settings = settings.model_copy(update=updates)
    with progress_bar(console, "answering") as update:
        report = evaluate_file(
            data,
            "intents" if data_format == "intents" else "squad",
            settings,
            limit=limit,
            kb_per_intent=kb_per_intent,
            unseen_intents=unseen_intents,
            seed=seed,
            split="dev" if split == "dev" else "test" if split == "test" else "all",
            progress=console.print,
            answered=update,
        )
    print_report(report)
    if json_out is not None:
        write_json_report(json_out, report, console)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def print_report(report: dict[str, Any]) -> None:
    summary = report["summary"]
    knowledge = report["knowledge"]
    console.print(
        f"[bold]{report['data']}[/bold] ({report['format']}): {summary['questions']} questions, "
        f"{knowledge['documents']} documents / {knowledge['passages']} passages"
        + (f" ({knowledge['kb_per_intent']} rows per intent)" if knowledge["kb_per_intent"] else "")
    )
    console.print(
        f"at handoff_below {report['handoff_below']:.2f}: answered "
        f"[bold]{_percent(summary['answered_share'])}[/bold], accuracy among answered "
        f"[bold]{_percent(summary['accuracy_among_answered'])}[/bold], hand-off "
        f"{_percent(summary['handoff_share'])} {summary['handoff_reasons']}"
    )
    if summary["uncovered_questions"]:
        console.print(
            f"questions the knowledge does not cover: {summary['uncovered_questions']}, "
            f"answered anyway [bold]{_percent(summary['uncovered_answered_share'])}[/bold] "
            f"{summary['uncovered_handoff_reasons']}"
        )
    if report["coverage_learned"]:
        title = (
            f"by coverage threshold (at handoff_below {report['handoff_below']:.2f}; "
            f"service default {report['min_coverage']:.2f})"
        )
        columns = {
            "covered answered": "covered_answered_share",
            "accuracy among answered": "accuracy_among_answered",
            "uncovered answered": "uncovered_answered_share",
        }
        console.print(_curve(title, "min coverage", "min_coverage", columns, report["coverage"]))
    else:
        console.print("coverage not learned: too few documents or rehearsals to learn it from")
    if "gold_answer_in_correct_answers" in report:
        console.print(
            "gold answer inside correct answers: "
            f"{_percent(report['gold_answer_in_correct_answers'])}"
        )
    columns = {
        "answered (no rule hand-off)": "answered_share",
        "answered (all covered)": "answered_share_all",
        "accuracy among answered": "accuracy_among_answered",
    }
    title = f"by confidence threshold ({report['split']} questions)"
    console.print(_curve(title, "threshold", "threshold", columns, report["thresholds"]))
    timing = report["timing"]
    console.print(
        f"model {report['model_id']} ({report['model_revision']}); load "
        f"{timing['model_load_seconds']:.1f} s, index {timing['index_seconds']:.1f} s, "
        f"{timing['questions_per_second']:.1f} questions/s"
    )


def _curve(
    title: str, header: str, key: str, columns: dict[str, str], rows: list[dict[str, Any]]
) -> Table:
    """A table of shares per threshold: ``key`` in the first column, then each column's
    field as a percentage."""
    table = Table(title=title)
    for column in (header, *columns):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(f"{row[key]:.2f}", *(_percent(row[field]) for field in columns.values()))
    return table


def gaps(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's gaps.")] = None,
    examples: Annotated[int, typer.Option(help="Latest questions shown per article.")] = 3,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the summary as JSON here.")
    ] = None,
) -> None:
    """Questions the shop's knowledge does not cover (hand-off not_covered), read from the
    knowledge-gaps topic and grouped per tenant by the article they came closest to: what
    to write next."""
    import asyncio  # noqa: PLC0415 - only this command needs it

    from shopstream.kafka_io import read_topic  # noqa: PLC0415
    from shopstream_responder.gaps import summarise_gaps  # noqa: PLC0415

    settings = ResponderSettings()
    topic = settings.topics.knowledge_gaps

    async def read() -> list[KnowledgeGapFound]:
        found = []
        async for _key, value, _headers in read_topic(settings.kafka, topic):
            try:
                found.append(KnowledgeGapFound.model_validate_json(value))
            except ValidationError:
                continue  # another event type on a shared topic is not a gap
        return found

    try:
        events = asyncio.run(read())
    except LookupError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    summary = summarise_gaps(events, examples=examples, tenant_id=tenant)
    if not summary:
        console.print(f"no knowledge gaps on {topic}" + (f" for {tenant}" if tenant else ""))
    for shop in summary:
        table = Table(
            "closest article", "questions", "intents", "latest questions",
            title=f"{shop.tenant_id}: {shop.questions} questions no article covers ({topic})",
        )  # fmt: skip
        for group in shop.ranked():
            table.add_row(
                group.nearest_doc,
                str(group.questions),
                ", ".join(f"{intent} {count}" for intent, count in group.intents.most_common()),
                "\n".join(group.latest),
            )
        console.print(table)
    if json_out is not None:
        document = [
            {
                "tenant_id": shop.tenant_id,
                "questions": shop.questions,
                "groups": [
                    {
                        "nearest_doc": group.nearest_doc,
                        "questions": group.questions,
                        "intents": dict(group.intents),
                        "latest": group.latest,
                    }
                    for group in shop.ranked()
                ],
            }
            for shop in summary
        ]
        json_out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")


app = typer.Typer(help="Evaluate the responder.", no_args_is_help=True)
app.command("evaluate")(evaluate)
app.command("gaps")(gaps)

if __name__ == "__main__":
    app()
