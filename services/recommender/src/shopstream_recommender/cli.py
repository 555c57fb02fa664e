"""`shopstream eval recommender`: next-item quality of the blend against two baselines."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shopstream.reports import progress_bar
from shopstream.settings import ShopstreamSettings
from shopstream_recommender import evaluation
from shopstream_recommender.config import RecommenderSettings
from shopstream_recommender.evaluation import PROTOCOLS, DataFormat, EvalReport, read_clicks
from shopstream_recommender.kafka_eval import KafkaEvalReport

console = Console()


def evaluate(
    *,
    data: Annotated[
        Path,
        typer.Option(
            exists=True, dir_okay=False, help="Clicks to predict, replayed in time order."
        ),
    ],
    data_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="sessions (TSV SessionId, ItemId, Time) or interactions "
            "(CSV user,item,timestamp[,rating]).",
        ),
    ] = "sessions",
    warmup: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Earlier clicks replayed first without scoring (e.g. the train file). Without "
            "it, the first --warmup-fraction of DATA's timeline warms up.",
        ),
    ] = None,
    warmup_fraction: Annotated[float, typer.Option(min=0.0, max=0.99)] = 0.8,
    k: Annotated[
        int, typer.Option(min=1, max=100, help="List length scored (hit rate@k, NDCG@k, MRR@k).")
    ] = 10,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many predictions.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report here.")
    ] = None,
    through_kafka: Annotated[
        bool,
        typer.Option(
            "--through-kafka",
            help="Also replay through the real broker (SHOPSTREAM_KAFKA__BOOTSTRAP_SERVERS) and "
            "a recommender service, and score its answers beside the in-process run.",
        ),
    ] = False,
) -> None:
    """Replay clicks through the recommender's own ranking code and two baselines; print
    hit rate, NDCG and MRR at k, and catalogue coverage, side by side."""
    if data_format not in ("sessions", "interactions"):
        raise typer.BadParameter("--format must be sessions or interactions")
    chosen: DataFormat = "sessions" if data_format == "sessions" else "interactions"
    clicks = read_clicks(data, chosen)
    if warmup is not None:
        history, test = read_clicks(warmup, chosen), clicks
    else:
        cut = int(len(clicks) * warmup_fraction)
        history, test = clicks[:cut], clicks[cut:]
    settings = RecommenderSettings()
    # The replay skips re-clicks, so the number of predictions is known only at the end.
    with progress_bar(console, "replaying clicks", total=limit) as update:
        report = evaluation.evaluate(
            history,
            test,
            config=settings.ranking,
            limits=settings.limits,
            k=k,
            limit=limit,
            progress=update,
        )
    wire: KafkaEvalReport | None = None
    if through_kafka:
        # Imported here: the in-process replay needs no Kafka client.
        from shopstream_recommender.kafka_eval import evaluate_through_kafka  # noqa: PLC0415

        service_settings = settings.model_copy(update={"kafka": ShopstreamSettings().kafka})
        with console.status("replaying clicks through Kafka ..."):
            wire = asyncio.run(
                evaluate_through_kafka(history, test, settings=service_settings, k=k, limit=limit)
            )
    print_report(report, wire)
    if json_out is not None:
        document = report.as_dict()
        if wire is not None:
            document["through_kafka"] = wire.as_dict()
        json_out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {json_out}")


def print_report(report: EvalReport, wire: KafkaEvalReport | None = None) -> None:
    summary = report.as_dict()
    coverage = summary["coverage"]
    assert isinstance(coverage, dict)
    for protocol in PROTOCOLS:
        by_method = report.scores[protocol]
        first = next(iter(by_method.values()))
        table = Table(title=f"{protocol} ({first.predictions} predictions, k={report.k})")
        for column in (
            "method",
            f"hit rate@{report.k}",
            f"NDCG@{report.k}",
            f"MRR@{report.k}",
            "coverage",
        ):
            table.add_column(column, justify="left" if column == "method" else "right")
        for method, scores in by_method.items():
            values = scores.summary()
            table.add_row(
                method,
                f"{values['hit_rate']:.4f}",
                f"{values['ndcg']:.4f}",
                f"{values['mrr']:.4f}",
                f"{coverage[method]:.3f}",
            )
        if wire is not None and protocol == "next_item":
            values = wire.scores.summary()
            table.add_row(
                f"shopstream through Kafka ({wire.answered}/{wire.requests} answered)",
                f"{values['hit_rate']:.4f}",
                f"{values['ndcg']:.4f}",
                f"{values['mrr']:.4f}",
                f"{len(wire.recommended) / max(1, report.catalogue_items):.3f}",
            )
        console.print(table)
    console.print(
        f"{report.warmup_clicks} warm-up clicks, {report.test_clicks} test clicks, "
        f"{report.catalogue_items} items, {report.skipped_reclicks} re-clicks of the current "
        f"page not scored, {report.seconds:.1f} s"
    )
    if wire is not None:
        rate = wire.events_published / max(wire.answer_seconds, 1e-9)
        console.print(
            f"through Kafka: {wire.events_published} events published in "
            f"{wire.publish_seconds:.1f} s, all {wire.answered} answers back after "
            f"{wire.answer_seconds:.1f} s ({rate:,.0f} events/s end to end)"
        )
