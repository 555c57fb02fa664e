"""``shopstream sentiment train``, ``shopstream eval sentiment`` and ``eval sentiment-aspects``.

Registered by the ``shopstream`` CLI; also runnable as ``python -m shopstream_sentiment.cli``.
torch is imported inside the commands, so listing the CLI's help stays fast.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shopstream.reports import JsonReportOption, progress_bar, write_json_report
from shopstream_sentiment.config import DEFAULT_ASPECTS, DEFAULT_HEAD, SentimentModelConfig

console = Console()


def _command_line(data: list[Path], out: Path, options: dict[str, object]) -> str:
    """The exact command that reproduces a head, for its metadata."""
    words = ["uv", "run", "shopstream", "sentiment", "train"]
    for path in data:
        words += ["--data", str(path)]
    words += ["--out", str(out)]
    for name, value in options.items():
        if value is not None:
            words += [f"--{name.replace('_', '-')}", str(value)]
    return shlex.join(words)


def train(
    data: Annotated[
        list[Path],
        typer.Option("--data", help="CSV file with label,text[,rating,title]; repeat for more."),
    ],
    out: Annotated[Path, typer.Option(help="Directory to write the head to.")] = DEFAULT_HEAD,
    *,
    encoder: Annotated[str, typer.Option(help="Frozen encoder (registry name, dir, Hub id).")] = (
        "multilingual-e5-small"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the held-out split and CV folds.")] = 13,
    test_fraction: Annotated[float, typer.Option(help="Share of each file held out.")] = 0.2,
    lexical_bits: Annotated[
        int, typer.Option(help="Hash size 2**bits of the n-gram block; 0 = embeddings only.")
    ] = 18,
    chunk_tokens: Annotated[int, typer.Option(help="Token budget per review chunk.")] = 128,
    max_chunks: Annotated[int, typer.Option(help="Chunks kept per review.")] = 8,
    folds: Annotated[int, typer.Option(help="Cross-validation folds for C and calibration.")] = 5,
    batch_size: Annotated[int, typer.Option(help="Encoder batch size.")] = 32,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Cache passage embeddings here (development; never commit it)."),
    ] = None,
    finetune_layers: Annotated[
        int, typer.Option(help="Fine-tune the encoder's top N layers with the head; 0 = frozen.")
    ] = 0,
    finetune_epochs: Annotated[int, typer.Option(help="Fine-tuning epochs (best on dev).")] = 2,
    finetune_lr: Annotated[float, typer.Option(help="Learning rate of the tuned layers.")] = 1e-4,
    finetune_average: Annotated[
        float,
        typer.Option(
            help="Decay of a per-step moving average of the tuned weights, a candidate each "
            "epoch beside the epoch's own (0 = none)."
        ),
    ] = 0.0,
) -> None:
    """Train the sentiment head on labelled reviews and report held-out metrics."""
    from shopstream_sentiment.finetune import FinetuneOptions  # noqa: PLC0415  torch
    from shopstream_sentiment.head import Chunking  # noqa: PLC0415
    from shopstream_sentiment.train import TrainOptions, train_head  # noqa: PLC0415  torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    options = TrainOptions(
        encoder=encoder,
        chunking=Chunking(chunk_tokens=chunk_tokens, max_chunks=max_chunks),
        lexical_bits=lexical_bits,
        seed=seed,
        test_fraction=test_fraction,
        folds=folds,
        batch_size=batch_size,
        threads=threads,
        cache_dir=cache_dir,
        finetune=(
            FinetuneOptions(
                layers=finetune_layers,
                epochs=finetune_epochs,
                learning_rate=finetune_lr,
                seed=seed,
                average_decay=finetune_average,
            )
            if finetune_layers
            else None
        ),
    )
    command = _command_line(
        data,
        out,
        {
            "encoder": encoder,
            "seed": seed,
            "test_fraction": test_fraction,
            "lexical_bits": lexical_bits,
            "chunk_tokens": chunk_tokens,
            "max_chunks": max_chunks,
            "folds": folds,
            **(
                {
                    "finetune_layers": finetune_layers,
                    "finetune_epochs": finetune_epochs,
                    "finetune_lr": finetune_lr,
                    **({"finetune_average": finetune_average} if finetune_average else {}),
                }
                if finetune_layers
                else {}
            ),
        },
    )
    result = train_head(data, out, options, command)
    metadata = result.metadata
    table = Table(title=f"held-out metrics of {out}")
    for column in ("rows", "accuracy", "macro-F1", "neutral share", "log loss", "ECE"):
        table.add_column(column, justify="right")
    table.add_column("data", justify="left")
    for name, metrics in metadata["metrics"]["held_out"].items():
        table.add_row(
            str(metrics["rows"]),
            f"{metrics['accuracy']:.2%}",
            f"{metrics['macro_f1']:.4f}",
            f"{metrics['neutral_share']:.1%}",
            f"{metrics['log_loss']:.3f}",
            f"{metrics['expected_calibration_error']:.3f}",
            name,
        )
    console.print(table)
    timing = metadata["timing"]
    for group in metadata["groups"]:
        record = metadata["language_groups"][group]
        console.print(
            f"{group} head: {record['train_rows']} training reviews, C (embedding, lexical) = "
            f"{record['embedding_c']}, {record['lexical_c']}; out-of-fold accuracy "
            f"{record['out_of_fold_accuracy']:.2%}"
        )
    tuned = metadata["encoder"].get("fine_tuned")
    if tuned:
        for epoch in tuned["per_epoch"]:
            averaged = epoch.get("averaged_dev_accuracy")
            console.print(
                f"fine-tuning epoch {epoch['epoch']}: loss {epoch['train_loss']:.3f}, dev "
                f"accuracy {epoch['dev_accuracy']}"
                + (f" (averaged weights {averaged})" if averaged else "")
                + f", {epoch['seconds']:.0f} s"
            )
        kept = " (averaged weights)" if tuned.get("kept_weights") == "averaged" else ""
        console.print(
            f"kept epoch {tuned['kept_epoch']}{kept} of the top {tuned['layers']} layers; "
            "lower-layer "
            f"cache {tuned['cache_seconds']:.0f} s, fine-tuning in all {tuned['seconds']:.0f} s"
        )
    console.print(
        f"neutral band {metadata['neutral_band']:.2f}; embedding "
        f"{timing['embedding_seconds']:.0f} s, fitting {timing['fit_seconds']:.0f} s, total "
        f"{timing['total_seconds']:.0f} s; head {out / 'head.safetensors'} "
        f"({(out / 'head.safetensors').stat().st_size / 1e6:.2f} MB)"
    )


def evaluate(
    data: Annotated[Path, typer.Option("--data", help="CSV file with label,text[,rating,title].")],
    json_out: JsonReportOption = None,
    limit: Annotated[int | None, typer.Option(help="Score at most this many rows.")] = None,
    *,
    head: Annotated[Path, typer.Option(help="Head directory (encoder_head backend).")] = (
        DEFAULT_HEAD
    ),
    backend: Annotated[
        str, typer.Option(help="encoder_head or sequence_classification.")
    ] = "encoder_head",
    hf_model: Annotated[
        str | None, typer.Option(help="Classifier for the sequence_classification backend.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Reviews per predict_batch call.")] = 32,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    aspects: Annotated[bool, typer.Option(help="Also find aspects (as the service does).")] = True,
) -> None:
    """Accuracy, macro-F1, per-class precision/recall, confusion matrix, throughput, neutral
    share; only the rows the head did not train on when the file is one of its training files."""
    from shopstream_sentiment.evaluation import evaluate_file  # noqa: PLC0415  torch

    config = SentimentModelConfig.model_validate(
        {
            "backend": backend,
            "head": head,
            "hf_model": hf_model,
            "batch_size": batch_size,
            "threads": threads,
            "aspects_enabled": aspects,
        }
    )
    with progress_bar(console, "scoring") as update:
        report = evaluate_file(data, config, limit=limit, progress=update)
    _print_report(report)
    if json_out is not None:
        write_json_report(json_out, report, console)


def _print_report(report: dict[str, Any]) -> None:
    which = "held-out rows" if report["held_out_rows_only"] else "all rows"
    console.print(
        f"[bold]{report['file']}[/bold]: {report['rows']} {which}; {report['task']}\n"
        f"accuracy [bold]{report['accuracy']:.2%}[/bold]  macro-F1 {report['macro_f1']:.4f}  "
        f"neutral share {report['neutral_share']:.1%}  "
        f"throughput {report['throughput_texts_per_second']:.1f} texts/s "
        f"(batch {report['batch_size']}, aspects {'on' if report['aspects'] else 'off'})"
    )
    classes = Table(title="per class")
    for column in ("class", "precision", "recall", "F1", "support"):
        classes.add_column(column, justify="right")
    for label, scores in report["per_class"].items():
        classes.add_row(
            label,
            f"{scores['precision']:.4f}",
            f"{scores['recall']:.4f}",
            f"{scores['f1']:.4f}",
            str(scores["support"]),
        )
    console.print(classes)
    confusion = Table(title="confusion (rows: true, columns: predicted label)")
    labels = list(report["label_confusion"])
    confusion.add_column("true \\ predicted")
    for label in labels:
        confusion.add_column(label, justify="right")
    for true_label, row in report["label_confusion"].items():
        if sum(row.values()):
            confusion.add_row(true_label, *(str(row[label]) for label in labels))
    console.print(confusion)
    console.print(f"model {report['model_id']} ({report['model_revision']})")


def evaluate_aspects(
    data: Annotated[
        list[Path],
        typer.Option("--data", help="JSON lines with text and gold [aspect, polarity] pairs."),
    ],
    json_out: JsonReportOption = None,
    *,
    aspects_file: Annotated[
        Path, typer.Option("--aspects", help="Aspect catalogue to measure.")
    ] = DEFAULT_ASPECTS,
    aspect_threshold: Annotated[
        float | None,
        typer.Option(help="Prototype similarity threshold; unset: the catalogue's own."),
    ] = None,
    aspect_neutral_band: Annotated[
        float | None,
        typer.Option(help="Neutral band of a finding's polarity; unset: the review's band."),
    ] = None,
    head: Annotated[Path, typer.Option(help="Head directory (encoder_head backend).")] = (
        DEFAULT_HEAD
    ),
    batch_size: Annotated[int, typer.Option(help="Sentences per predict_batch call.")] = 32,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
) -> None:
    """Per-aspect precision, recall and F1 of the aspect findings, for the aspect alone and for
    (aspect, polarity) pairs, per file, with micro averages."""
    from shopstream_sentiment.aspect_evaluation import evaluate_aspect_files  # noqa: PLC0415

    config = SentimentModelConfig.model_validate(
        {
            "head": head,
            "aspects": aspects_file,
            "aspect_threshold": aspect_threshold,
            "aspect_neutral_band": aspect_neutral_band,
            "batch_size": batch_size,
            "threads": threads,
        }
    )
    with progress_bar(console, "finding aspects") as update:
        report = evaluate_aspect_files(data, config, progress=update)
    for file_report in report["files"]:
        _print_aspect_report(file_report)
    console.print(
        f"catalogue {report['aspects_file']} (prototype threshold "
        f"{report['prototype_threshold']:.2f}, polarity neutral band "
        f"{report['aspect_neutral_band']:.2f}); model {report['model_id']} "
        f"({report['model_revision']}); {report['seconds']:.1f} s"
    )
    if json_out is not None:
        write_json_report(json_out, report, console)


def _print_aspect_report(report: dict[str, Any]) -> None:
    table = Table(
        title=f"{report['file']}: {report['sentences']} sentences",
        caption="P/R/F1: the aspect is named; P+/R+/F1+: named with the gold polarity",
    )
    table.add_column("aspect", min_width=15, no_wrap=True)
    for column in ("gold", "found", "P", "R", "F1", "P+", "R+", "F1+"):
        table.add_column(column, justify="right")

    def row(name: str, scores: dict[str, dict[str, Any]]) -> list[str]:
        found, pairs = scores["detection"], scores["pairs"]
        return [
            name,
            str(found["gold"]),
            str(found["found"]),
            *(f"{found[key]:.2f}" for key in ("precision", "recall", "f1")),
            *(f"{pairs[key]:.2f}" for key in ("precision", "recall", "f1")),
        ]

    for aspect, scores in report["per_aspect"].items():
        table.add_row(*row(aspect, scores))
    table.add_section()
    table.add_row(*row("micro", report["micro"]), style="bold")
    console.print(table)


app = typer.Typer(help="Train and evaluate the sentiment head.", no_args_is_help=True)
app.command("train")(train)
app.command("evaluate")(evaluate)
app.command("evaluate-aspects")(evaluate_aspects)

if __name__ == "__main__":
    app()
