"""Describer quality on a JSONL file of products, with optional human references.

Rows carry either ``attributes`` (a list of [key, value]; repeated keys are merged) or
catalogue fields (title, brand, gender, colour, price, ...). Each row becomes the same
`product.upserted` payload the service receives, goes through the same pipeline, and the
published text (SEO title, description, bullets) is checked again from scratch.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopstream.events import ProductUpsertedPayload
from shopstream_describer.claims import FactIndex, ground
from shopstream_describer.compliance import Lexicon
from shopstream_describer.facts import ProductFacts
from shopstream_describer.pipeline import DescriberPipeline, DescriptionJob
from shopstream_describer.quality import coverage
from shopstream_describer.text import has_cjk

_CATALOGUE_FIELDS = {
    "gender": "gender",
    "primary_color": "primary colour",
    "primary_colour": "primary colour",
    "colour": "colour",
    "color": "colour",
    "material": "material",
    "size": "size",
}
_TITLE_KEYS = ("类型", "type", "category")


@dataclass(frozen=True)
class EvalRow:
    payload: ProductUpsertedPayload
    reference: str | None


def read_rows(path: Path, limit: int | None = None) -> Iterator[EvalRow]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            if limit is not None and number >= limit:
                return
            if line.strip():
                yield row_to_payload(json.loads(line), number)


def row_to_payload(row: dict[str, Any], number: int) -> EvalRow:
    attributes: dict[str, str] = {}
    for key, value in row.get("attributes") or []:
        merged = attributes.get(key)
        attributes[key] = f"{merged}、{value}" if merged and value not in merged else value
    for field, key in _CATALOGUE_FIELDS.items():
        if row.get(field):
            attributes[key] = str(row[field])
    title = row.get("title") or next(
        (attributes[key] for key in _TITLE_KEYS if key in attributes),
        next(iter(attributes.values()), f"product {number}"),
    )
    text = " ".join([title, *attributes.values()])
    price = None
    if row.get("price_inr"):
        price = {"amount": float(row["price_inr"]), "currency": "INR"}
    payload = ProductUpsertedPayload.model_validate(
        {
            "product_id": str(row.get("product_id") or number),
            "title": title,
            "locale": row.get("locale") or ("zh" if has_cjk(text) else "en"),
            "brand": row.get("brand"),
            "attributes": attributes,
            "price": price,
        }
    )
    return EvalRow(payload, row.get("reference"))


def evaluate_rows(
    rows: Sequence[EvalRow], pipeline: DescriberPipeline, lexicon: Lexicon, batch_size: int = 16
) -> dict[str, Any]:
    facts = [ProductFacts.from_payload(row.payload) for row in rows]
    jobs = [DescriptionJob(item, item.locale, lexicon) for item in facts]
    started = time.perf_counter()
    results = []
    for start in range(0, len(jobs), batch_size):
        results += pipeline.describe(jobs[start : start + batch_size])
    seconds = time.perf_counter() - started
    clean_unsupported = clean_findings = clean = 0
    coverages, description_coverages, lengths = [], [], []
    unsupported_examples: list[str] = []
    paths: Counter[str] = Counter()
    for item, result in zip(facts, results, strict=True):
        published = "\n".join([result.seo_title, result.description, *result.bullet_points])
        index = FactIndex.of([item])
        unsupported = ground(published, index).unsupported
        findings = lexicon.scan(published)
        paths[result.quality.path.value] += 1
        coverages.append(coverage([item], published))
        description_coverages.append(coverage([item], result.description))
        lengths.append(len(result.description))
        if not result.quality.review_required:
            clean += 1
            clean_unsupported += len(unsupported)
            clean_findings += len(findings)
            unsupported_examples += [claim.text for claim in unsupported][:3]
    references = [
        (item, row.reference) for item, row in zip(facts, rows, strict=True) if row.reference
    ]
    reference_unsupported = [
        len(ground(text, FactIndex.of([item])).unsupported) for item, text in references
    ]
    count = len(rows)
    return {
        "rows": count,
        "clean_share": clean / count if count else 0.0,
        "clean_unsupported_claims": clean_unsupported,
        "clean_compliance_findings": clean_findings,
        "unsupported_examples": unsupported_examples[:10],
        "attribute_coverage": statistics.fmean(coverages) if coverages else 0.0,
        "description_coverage": (
            statistics.fmean(description_coverages) if description_coverages else 0.0
        ),
        "paths": {path: paths[path] / count for path in sorted(paths)} if count else {},
        "description_chars_median": statistics.median(lengths) if lengths else 0,
        "items_per_second": count / seconds if seconds else 0.0,
        "seconds": seconds,
        "reference_unsupported_per_text": (
            statistics.fmean(reference_unsupported) if reference_unsupported else None
        ),
        "reference_compliance_hits": sum(len(lexicon.scan(text)) for _, text in references),
    }
