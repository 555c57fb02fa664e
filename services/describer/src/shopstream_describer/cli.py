"""``shopstream eval describer``: quality of descriptions on a JSONL file of products.

torch is imported inside the command, and only when a generator is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shopstream.reports import JsonReportOption, progress_bar
from shopstream_describer.compliance import Lexicons
from shopstream_describer.config import DEFAULT_GENERATOR, GeneratorConfig, packaged_adapter
from shopstream_describer.evaluation import evaluate_rows, read_rows, select_split
from shopstream_describer.pipeline import DescriberPipeline, Generator, PipelineOptions

console = Console()


def evaluate(
    *,
    data: Annotated[Path, typer.Option("--data", help="JSONL file of products.")],
    json_out: JsonReportOption = None,
    limit: Annotated[int | None, typer.Option(help="Describe at most this many rows.")] = None,
    generator: Annotated[
        str, typer.Option(help="Generator (registry name, dir, Hub id); '' = composer only.")
    ] = DEFAULT_GENERATOR,
    adapter: Annotated[
        str, typer.Option(help="LoRA adapter directory, 'default' (packaged) or 'none'.")
    ] = "default",
    split: Annotated[
        str, typer.Option(help="all, or test (held out from tuning) / train rows only.")
    ] = "all",
    languages: Annotated[str, typer.Option(help="Comma-separated generator languages.")] = "en,zh",
    max_attempts: Annotated[int, typer.Option(help="Generations before repair/compose.")] = 2,
    batch_size: Annotated[int, typer.Option(help="Products per pipeline batch.")] = 16,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    prefix_cache: Annotated[
        bool, typer.Option(help="Run a batch's common prompt start once (prefix caching).")
    ] = True,
) -> None:
    """Describe each product and report grounding, compliance, coverage, paths and speed."""
    rows = select_split(list(read_rows(data)), split)[:limit]
    config = GeneratorConfig(
        generator=generator or None,
        adapter=adapter,
        languages=[item.strip() for item in languages.split(",") if item.strip()],
        threads=threads,
        batch_size=batch_size,
        max_attempts=max_attempts,
        share_prompt_prefix=prefix_cache,
    )
    locales = {row.payload.locale.split("-")[0] for row in rows}
    used = [config] if config.generator and locales & set(config.languages) else []
    models: list[Generator] = []
    if used:
        from shopstream_describer.model import DescriberModel  # noqa: PLC0415  torch

        for item in used:
            loaded = DescriberModel(item)
            loaded.load()
            models.append(loaded)
    options = PipelineOptions(
        max_attempts=max_attempts,
        description_tokens=config.description_tokens,
        copy_tokens=config.copy_tokens,
    )
    pipeline = DescriberPipeline(models, options)
    with progress_bar(console, "describing", total=len(rows)) as update:
        result = evaluate_rows(rows, pipeline, Lexicons().default, batch_size, progress=update)
    result |= {
        "data": str(data),
        "generator": ",".join(str(item.generator) for item in used) or None,
    }
    table = Table(title=f"describer on {data.name}, {split} split ({result['rows']} products)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("bar", justify="right")
    table.add_row(
        "unsupported claims in clean outputs", str(result["clean_unsupported_claims"]), "0"
    )
    table.add_row(
        "compliance findings in clean outputs", str(result["clean_compliance_findings"]), "0"
    )
    table.add_row(
        "attribute coverage (published text)", f"{result['attribute_coverage']:.1%}", ">= 80%"
    )
    table.add_row(
        "attribute coverage (description only)", f"{result['description_coverage']:.1%}", ""
    )
    table.add_row("outputs marked clean", f"{result['clean_share']:.1%}", "")
    for path, share in result["paths"].items():
        table.add_row(f"path: {path}", f"{share:.1%}", "")
    table.add_row("published as generated or regenerated", f"{result['generated_share']:.1%}", "")
    table.add_row("description chars (median)", f"{result['description_chars_median']:.0f}", "")
    overall = next(iter(locales)) if len(locales) == 1 else "all"
    for language, figures in ({overall: result} | result.get("by_language", {})).items():
        if figures.get("rouge_l_f1") is not None:
            unit = {"zh": "characters", "all": "mixed"}.get(language, "words")
            table.add_row(
                f"ROUGE-L F1 vs human ({language}, {unit})",
                f"{figures['rouge_l_f1']:.3f}",
                ">= 0.25 (zh)" if language in ("zh", "all") else "",
            )
            table.add_row(f"BLEU-4 vs human ({language})", f"{figures['bleu_4']:.3f}", "")
        table.add_row(f"distinct-2 ({language})", f"{figures['distinct_2']:.3f}", "")
    for kind, count in result.get("candidate_unsupported_by_kind", {}).items():
        table.add_row(f"unsupported {kind} claims in model candidates", str(count), "")
    table.add_row("items/s", f"{result['items_per_second']:.2f}", "")
    if result["reference_unsupported_per_text"] is not None:
        table.add_row(
            "human reference: unsupported claims per text",
            f"{result['reference_unsupported_per_text']:.2f}",
            "",
        )
        table.add_row(
            "human reference: compliance hits", str(result["reference_compliance_hits"]), ""
        )
    console.print(table)
    if json_out is not None:
        json_out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")


def tune(
    *,
    data: Annotated[
        list[Path], typer.Option("--data", help="JSONL file of products with references.")
    ],
    out: Annotated[Path, typer.Option(help="Directory to write the adapter to.")],
    generator: Annotated[
        str, typer.Option(help="Base generator (registry name, dir, Hub id).")
    ] = DEFAULT_GENERATOR,
    epochs: Annotated[int, typer.Option(help="Passes over the training rows.")] = 1,
    english_rows: Annotated[int, typer.Option(help="At most this many English rows.")] = 120,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate of the adapter.")] = 2e-4,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Train a LoRA adapter on the shop's own copy (held-out rows excluded); seeds fixed."""
    from shopstream.models import configure_threads  # noqa: PLC0415  torch
    from shopstream_describer.tuning import TuningSettings  # noqa: PLC0415  torch
    from shopstream_describer.tuning import tune as run_tuning  # noqa: PLC0415  torch

    if threads:
        configure_threads(threads)
    settings = TuningSettings(
        epochs=epochs, learning_rate=learning_rate, rows_per_language={"en": english_rows}
    )
    with Progress(console=console) as progress:
        task = progress.add_task("tuning", total=None)

        def advance(step: int, steps: int, loss: float) -> None:
            progress.update(task, completed=step, total=steps, description=f"loss {loss:.3f}")

        metadata = run_tuning(
            data,
            out,
            generator=generator,
            lexicon=Lexicons().default,
            settings=settings,
            device_name=device,
            progress=advance,
        )
    console.print(
        f"adapter written to {out}: {metadata['examples']} examples "
        f"{metadata['examples_by_language']}, loss {metadata['first_loss']} -> "
        f"{metadata['final_loss']}, {metadata['wall_seconds']} s on {metadata['device']}"
    )


def export_adapter(
    *,
    out: Annotated[Path, typer.Option(help="Directory for the PEFT-layout adapter.")],
    adapter: Annotated[
        str, typer.Option(help="Adapter directory, or 'default' (the packaged one).")
    ] = "default",
) -> None:
    """Write an adapter in PEFT's layout for a serving engine (vLLM, TGI) to load."""
    from shopstream.models import lora  # noqa: PLC0415  torch

    source = packaged_adapter() if adapter == "default" else Path(adapter)
    lora.export_peft(source, out)
    base = lora.read_metadata(source)["base_model"]
    console.print(f"PEFT adapter for {base} written to {out}")
