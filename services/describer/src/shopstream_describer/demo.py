"""The describer part of `shopstream demo`: a sample shop's products and a campaign per language.

Five products (Chinese and English, some asking for both locales: three texts in each language)
go onto the catalogue topic and two copy requests (one zh, one en) onto the marketing topic. The
default generator, Qwen2.5-Coder-0.5B-Instruct, writes the zh and the en texts; every text is
read back from Kafka and shown with its quality report (path, grounded and unsupported claims,
attribute coverage, compliance findings) and how long after its publish it was written, with
the total time spent generating.

The token budget is at most the service's (``DEMO_TOKENS``, unless
``DESCRIBER_MODEL__DESCRIPTION_TOKENS`` / ``__COPY_TOKENS`` are set), so the step takes a minute
or two on a laptop CPU; ``DESCRIBER_MODEL__GENERATOR=none`` composes every text from the
attributes in seconds, and any other generator can be named there.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shopstream import demos
from shopstream.events import CopyRequested, Event, ProductUpserted, parse_key
from shopstream.kafka_io import end_offsets, publish_events, read_to_end
from shopstream.runtime.admin import ensure_topics
from shopstream.runtime.service import BatchService
from shopstream.services import DemoOptions
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings
from shopstream_describer.app import build_service
from shopstream_describer.config import DescriberSettings
from shopstream_describer.spec import SPEC

SHOWN_CHARS = 140
DEMO_TOKENS = {"description_tokens": 96, "copy_tokens": 48}
"""New tokens per description and per copy variant in the demo, at most the service's defaults:
enough for the short texts the prompts ask for (a cut-off last sentence is dropped)."""
_METRIC = f"shopstream_{SPEC.name}_"
_WATCHED = ("inference_seconds_sum", "inference_seconds_count")
"""Time in batched pipeline calls, their number, and inputs handled with results acknowledged."""

DescriptionKey = tuple[str, str]
"""(product id, locale)"""


@dataclass
class DescriberDemoOutcome:
    descriptions: int
    expected: int
    variants: int
    expected_variants: int
    review_required: int
    seconds: float
    """From the first publish to the last text read back."""
    start_seconds: float
    generation_seconds: float
    """Time the service's inference worker spent on this step's batches (generation, checks,
    composing): the service's ``inference_seconds`` histogram."""
    model_load_seconds: float
    generator: str | None
    described: dict[DescriptionKey, dict[str, Any]] = field(default_factory=dict)
    """The ``description.generated`` documents, by (product id, locale)."""
    copies: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The ``copy.generated`` documents, by campaign id."""
    clean_with_problems: int = 0
    """Texts marked clean that still carry an unsupported claim or a compliance finding (the
    gate's invariant says none)."""


def demo_catalogue() -> dict[str, Any]:
    """The sample products and campaigns shipped with the package (``data/demo_products.json``)."""
    return demos.package_json("shopstream_describer", "demo_products.json")


def demo_settings(kafka: KafkaSettings) -> DescriberSettings:
    """The service's settings (environment included) with the demo's smaller token budget."""
    settings = DescriberSettings(kafka=kafka, http_port=0)
    budget = {
        name: min(tokens, getattr(settings.model, name))
        for name, tokens in DEMO_TOKENS.items()
        if f"DESCRIBER_MODEL__{name.upper()}" not in os.environ
    }
    return settings.model_copy(update={"model": settings.model.model_copy(update=budget)})


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _clean_with_problems(quality: dict[str, Any]) -> bool:
    return not quality["review_required"] and bool(
        quality["unsupported_claims"] or quality["compliance_findings"]
    )


_QUALITY_COLUMNS = ("claims ok / unsupported", "coverage", "findings", "path", "report")
"""The columns `_quality_cells` fills, in its order."""


def _quality_cells(quality: dict[str, Any]) -> tuple[str | Text, ...]:
    grounded = len({claim["text"] for claim in quality["grounded_claims"]})
    unsupported = [claim["text"] for claim in quality["unsupported_claims"]]
    findings = [f"{item['term']} ({item['action']})" for item in quality["compliance_findings"]]
    verdict = (
        Text("review", style="yellow") if quality["review_required"] else Text("clean", "green")
    )
    return (
        f"{grounded} / {len(unsupported)}",
        f"{quality['attribute_coverage']:.0%}",
        ", ".join(findings) or "-",
        quality["path"],
        verdict,
    )


def _seconds_after(document: dict[str, Any], sent: datetime) -> str:
    """When the service wrote the text (its event's occurred_at), counted from the publish."""
    written = datetime.fromisoformat(document["occurred_at"])
    return f"{(written - sent).total_seconds():.1f}"


def _models(documents: Iterable[dict[str, Any]]) -> str:
    return ", ".join(sorted({document["lineage"]["model_id"] for document in documents})) or "-"


@dataclass
class _Tally:
    review: int = 0
    problems: int = 0
    variants: int = 0
    expected_variants: int = 0

    def add(self, quality: dict[str, Any]) -> None:
        self.review += quality["review_required"]
        self.problems += _clean_with_problems(quality)


def _announce(console: Console, settings: DescriberSettings, start: float, load: float) -> None:
    model = settings.model
    if not model.generator:
        console.print(
            f"describer ready in {start:.1f} s: no generator, every text composed from the "
            "attributes (unset DESCRIBER_MODEL__GENERATOR for the default model)"
        )
        return
    console.print(
        f"describer ready in {start:.1f} s: {model.generator} (writes "
        f"{', '.join(model.languages)}) loaded in {load:.1f} s; {model.description_tokens} new "
        f"tokens per description, {model.copy_tokens} per copy variant, up to "
        f"{model.max_attempts} attempts (DESCRIBER_MODEL__GENERATOR=none composes every text "
        "in seconds)"
    )


@dataclass
class _Tables:
    """The demo's result tables; drawing them counts what they show into `tally`."""

    sent_at: datetime
    """When the demo published its inputs (the tables show each text's seconds after it)."""
    tally: _Tally = field(default_factory=_Tally)

    def descriptions(
        self,
        described: dict[DescriptionKey, dict[str, Any]],
        wanted: set[DescriptionKey],
        ours: set[str],
        title: str,
    ) -> Table:
        table = Table(
            "product", "loc", "description", *_QUALITY_COLUMNS, "s",
            title=f"{title} (written by {_models(described.values())})",
            caption="s: seconds from the publish until the service wrote the text",
        )  # fmt: skip
        for key in sorted(wanted, key=lambda item: (item[1], item[0])):
            document = described.get(key)
            if document is None:
                table.add_row(key[0], key[1], Text("no description", style="red"))
                continue
            payload = document["payload"]
            text = _shorten(payload["description"])
            after = _seconds_after(document, self.sent_at)
            if document["causation_id"] not in ours:
                text += " (unchanged: kept from an earlier run)"
                after = "-"
            self.tally.add(payload["quality"])
            table.add_row(key[0], key[1], text, *_quality_cells(payload["quality"]), after)
        return table

    def copies(
        self, copies: dict[str, dict[str, Any]], campaigns: list[CopyRequested], title: str
    ) -> Table:
        table = Table(
            "campaign", "loc", "variant", *_QUALITY_COLUMNS, "s",
            title=f"{title} (written by {_models(copies.values())})",
        )  # fmt: skip
        for campaign in campaigns:
            brief = campaign.payload
            self.tally.expected_variants += brief.variants
            label = f"{brief.campaign_id} ({brief.channel.value})"
            document = copies.get(brief.campaign_id)
            if document is None:
                table.add_row(label, brief.locale, Text("no copy", style="red"))
                continue
            after = _seconds_after(document, self.sent_at)
            for variant in document["payload"]["variants"]:
                self.tally.variants += 1
                self.tally.add(variant["quality"])
                table.add_row(
                    label, brief.locale, variant["text"], *_quality_cells(variant["quality"]), after
                )
        return table


async def _publish_and_wait(
    kafka: KafkaSettings,
    service: BatchService[Event],
    topics: TopicSettings,
    products: list[ProductUpserted],
    campaigns: list[CopyRequested],
    *,
    within_seconds: float,
) -> None:
    """Publish the demo's inputs and wait until the service has handled everything up to them.

    A count of handled events is not enough: a run stopped early leaves its own inputs for the
    next run to handle first. What is on the output topics afterwards is this run's texts, or an
    earlier run's for products that did not change.
    """
    inputs = [topics.products, topics.copy_requests]
    earlier = await end_offsets(kafka, inputs)
    await publish_events(kafka, topics.products, products)
    await publish_events(kafka, topics.copy_requests, campaigns)
    ends = {
        tp: end
        for tp, end in (await end_offsets(kafka, inputs)).items()
        if end > earlier.get(tp, 0)
    }
    processed = service.context.partitions.processed
    deadline = time.monotonic() + within_seconds
    while any(processed.get(tp, 0) < end for tp, end in ends.items()):
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.2)


async def run_describer_demo(
    console: Console, kafka: KafkaSettings, *, within_seconds: float = 900.0
) -> DescriberDemoOutcome:
    """Publish the sample products and campaigns, start the describer, print texts, reports and
    timings."""
    catalogue = demo_catalogue()
    tenant = catalogue["tenant_id"]
    settings = demo_settings(kafka)
    topics = settings.topics
    products = [ProductUpserted(tenant_id=tenant, payload=item) for item in catalogue["products"]]
    campaigns = [CopyRequested(tenant_id=tenant, payload=item) for item in catalogue["campaigns"]]
    wanted = {
        (product.payload.product_id, locale)
        for product in products
        for locale in product.payload.target_locales or [product.payload.locale]
    }
    await ensure_topics(kafka, topics.specs())
    service = build_service(settings)
    start_seconds = await demos.start_in_view(
        console, service, f"describer: loading {settings.model.generator or 'no generator'}..."
    )
    registry = service.registry

    def metric(name: str) -> float:
        return registry.get_sample_value(_METRIC + name) or 0.0

    load_seconds = metric("model_load_seconds")
    _announce(console, settings, start_seconds, load_seconds)
    before = {name: metric(name) for name in _WATCHED}
    sent_at = datetime.now(UTC)
    sent = time.perf_counter()
    try:
        with console.status(
            f"describer: writing {len(wanted)} descriptions and copy for {len(campaigns)} "
            "campaigns..."
        ):
            await _publish_and_wait(
                kafka, service, topics, products, campaigns, within_seconds=within_seconds
            )
        seconds = time.perf_counter() - sent
        generation, calls = (metric(name) - before[name] for name in _WATCHED)
        described = await _latest_descriptions(kafka, topics.descriptions, tenant, wanted)
        copies = await _copies_for(kafka, topics.copies, {str(c.event_id) for c in campaigns})
    finally:
        await service.stop()

    ours = {str(product.event_id) for product in products}
    fresh = sum(document["causation_id"] in ours for document in described.values())
    tables = _Tables(sent_at)
    title = f"description.generated for {tenant} on {topics.descriptions}"
    console.print(tables.descriptions(described, wanted, ours, title))
    console.print(tables.copies(copies, campaigns, f"copy.generated on {topics.copies}"))
    tally = tables.tally
    texts = fresh + len(copies)
    per_text = f" ({generation / texts:.1f} s per description or campaign)" if texts else ""
    console.print(
        f"describer service: {len(described)}/{len(wanted)} descriptions ({fresh} written now) "
        f"and {tally.variants}/{tally.expected_variants} copy variants, {seconds:.1f} s from "
        f"publish to the last text; generation took {generation:.1f} s in {calls:.0f} batched "
        f"calls{per_text}; {tally.review} marked for human review; texts marked clean with an "
        f"unsupported claim or a compliance finding: {tally.problems}"
    )
    return DescriberDemoOutcome(
        descriptions=len(described),
        expected=len(wanted),
        variants=tally.variants,
        expected_variants=tally.expected_variants,
        review_required=tally.review,
        seconds=seconds,
        start_seconds=start_seconds,
        generation_seconds=generation,
        model_load_seconds=load_seconds,
        generator=settings.model.generator,
        described=described,
        copies=copies,
        clean_with_problems=tally.problems,
    )


async def _latest_descriptions(
    kafka: KafkaSettings, topic: str, tenant: str, wanted: set[DescriptionKey]
) -> dict[DescriptionKey, dict[str, Any]]:
    """The current text of each wanted product and locale: the compacted topic's last record
    for it (an unchanged product is not described again, so an earlier run's text stays)."""
    found: dict[DescriptionKey, dict[str, Any]] = {}
    async for key, value in read_to_end(kafka, topic, max_seconds=60):
        if value is None:  # withdrawn: `tenant:product:locale`
            owner, rest = parse_key(key) or ("", "")
            product_id, _, locale = rest.rpartition(":")
            if owner == tenant:
                found.pop((product_id, locale), None)
            continue
        document = json.loads(value)
        payload = document.get("payload", {})
        wanted_key = (payload.get("product_id"), payload.get("locale"))
        if document.get("tenant_id") == tenant and wanted_key in wanted:
            found[wanted_key] = document
    return found


async def _copies_for(
    kafka: KafkaSettings, topic: str, request_ids: set[str]
) -> dict[str, dict[str, Any]]:
    """The copy answering each request, by campaign id."""
    found: dict[str, dict[str, Any]] = {}
    async for _key, value in read_to_end(kafka, topic, max_seconds=60):
        document: dict[str, Any] = json.loads(value or b"{}")
        if document.get("causation_id") in request_ids:
            found[document["payload"]["campaign_id"]] = document
    return found


async def demo_step(options: DemoOptions) -> bool:
    """`shopstream demo`'s describer step: every description and copy variant published."""
    outcome = await run_describer_demo(options.console, options.kafka)
    return (
        outcome.descriptions == outcome.expected and outcome.variants == outcome.expected_variants
    )
