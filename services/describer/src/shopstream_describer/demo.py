"""The describer part of `shopstream demo`: a sample shop's products and one campaign.

Five products (Chinese and English, some asking for both locales) go onto the catalogue topic
and one copy request onto the marketing topic; every text is read back from Kafka and shown
with its quality report. The composer writes them unless ``DESCRIBER_MODEL__GENERATOR`` names
a generator, so the step takes seconds, not minutes, on a laptop CPU.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shopstream.events import CopyRequested, ProductUpserted
from shopstream.kafka_io import publish_events, read_topic
from shopstream.runtime.admin import ensure_topics
from shopstream.settings import KafkaSettings
from shopstream_describer.app import build_service
from shopstream_describer.config import DescriberSettings, GeneratorConfig

SHOWN_CHARS = 110


@dataclass
class DescriberDemoOutcome:
    descriptions: int
    expected: int
    variants: int
    review_required: int
    seconds: float
    start_seconds: float


def demo_catalogue() -> dict[str, Any]:
    """The sample products and campaign shipped with the package (``data/demo_products.json``)."""
    text = (
        resources.files("shopstream_describer")
        .joinpath("data", "demo_products.json")
        .read_text(encoding="utf-8")
    )
    catalogue: dict[str, Any] = json.loads(text)
    return catalogue


def demo_settings(kafka: KafkaSettings) -> DescriberSettings:
    settings = DescriberSettings(kafka=kafka, http_port=0)
    if "DESCRIBER_MODEL__GENERATOR" not in os.environ:
        settings = settings.model_copy(update={"model": GeneratorConfig(generator=None)})
    return settings


def _shorten(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


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


async def run_describer_demo(
    console: Console, kafka: KafkaSettings, *, within_seconds: float = 600.0
) -> DescriberDemoOutcome:
    """Publish the sample products and campaign, start the describer, print texts and reports."""
    catalogue = demo_catalogue()
    tenant = catalogue["tenant_id"]
    settings = demo_settings(kafka)
    topics = settings.topics
    products = [ProductUpserted(tenant_id=tenant, payload=item) for item in catalogue["products"]]
    campaign = CopyRequested(tenant_id=tenant, payload=catalogue["campaign"])
    wanted = {
        (product.payload.product_id, locale)
        for product in products
        for locale in product.payload.target_locales or [product.payload.locale]
    }
    await ensure_topics(kafka, topics.specs())
    service = build_service(settings)
    began = time.perf_counter()
    with console.status("describer: reading the product table, loading the generator if any..."):
        await service.start()
    start_seconds = time.perf_counter() - began
    console.print(
        f"describer ready in {start_seconds:.1f} s "
        f"({settings.model.generator or 'composer only'}; set DESCRIBER_MODEL__GENERATOR "
        "for a model)"
    )
    sent_at = time.perf_counter()
    try:
        await publish_events(kafka, topics.products, products)
        await publish_events(kafka, topics.copy_requests, [campaign])
        described = await _latest_descriptions(
            kafka, topics.descriptions, tenant, wanted, within_seconds
        )
        copies = await _copy_for(kafka, topics.copies, str(campaign.event_id), within_seconds)
    finally:
        await service.stop()
    seconds = time.perf_counter() - sent_at
    ours = {str(product.event_id) for product in products}
    table = Table(
        "product", "loc", "description", "claims ok / unsupported", "coverage", "findings",
        "path", "report",
        title=f"description.generated for {tenant} on {topics.descriptions}",
    )  # fmt: skip
    review = 0
    for key in sorted(wanted):
        document = described.get(key)
        if document is None:
            table.add_row(key[0], key[1], Text("no description", style="red"))
            continue
        payload = document["payload"]
        text = _shorten(payload["description"])
        if document["causation_id"] not in ours:
            text += " (unchanged: kept from an earlier run)"
        review += payload["quality"]["review_required"]
        table.add_row(key[0], key[1], text, *_quality_cells(payload["quality"]))
    console.print(table)
    variants = copies["payload"]["variants"] if copies else []
    brief = catalogue["campaign"]
    copy_table = Table(
        "variant", "claims ok / unsupported", "coverage", "findings", "path", "report",
        title=(
            f"copy.generated for campaign {brief['campaign_id']} "
            f"({brief['channel']}, {brief['locale']}, {brief['variants']} variants)"
        ),
    )  # fmt: skip
    for variant in variants:
        review += variant["quality"]["review_required"]
        copy_table.add_row(variant["text"], *_quality_cells(variant["quality"]))
    console.print(copy_table)
    console.print(
        f"describer service: {len(described)}/{len(wanted)} descriptions and {len(variants)} "
        f"copy variants in {seconds:.1f} s; {review} marked for human review"
    )
    return DescriberDemoOutcome(
        descriptions=len(described),
        expected=len(wanted),
        variants=len(variants),
        review_required=review,
        seconds=seconds,
        start_seconds=start_seconds,
    )


async def _latest_descriptions(
    kafka: KafkaSettings,
    topic: str,
    tenant: str,
    wanted: set[tuple[str, str]],
    within_seconds: float,
) -> dict[tuple[str, str], dict[str, Any]]:
    # The compacted topic holds the current text of every product and locale: an unchanged
    # product is not described again, so an earlier run's text is the current one.
    found: dict[tuple[str, str], dict[str, Any]] = {}
    async for _key, value, _headers in read_topic(
        kafka, topic, idle_timeout=within_seconds, deadline=time.monotonic() + within_seconds
    ):
        document = json.loads(value)
        payload = document.get("payload", {})
        key = (payload.get("product_id"), payload.get("locale"))
        if document.get("tenant_id") == tenant and key in wanted:
            found[key] = document
        if len(found) == len(wanted):
            break
    return found


async def _copy_for(
    kafka: KafkaSettings, topic: str, request_id: str, within_seconds: float
) -> dict[str, Any] | None:
    async for _key, value, _headers in read_topic(
        kafka, topic, idle_timeout=within_seconds, deadline=time.monotonic() + within_seconds
    ):
        document: dict[str, Any] = json.loads(value)
        if document.get("causation_id") == request_id:
            return document
    return None
