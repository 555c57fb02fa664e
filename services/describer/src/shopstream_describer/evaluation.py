"""Describer quality on a JSONL file of products, with optional human references.

Rows carry either ``attributes`` (a list of [key, value]; repeated keys are merged) or
catalogue fields (title, brand, gender, colour, price, ...). Each row becomes the same
`product.upserted` payload the service receives, goes through the same pipeline, and the
published text (SEO title, description, bullets) is checked again from scratch. Where a row
has a reference, the description is also scored against it (ROUGE-L, BLEU-4; see
`text_metrics`), and every candidate a generator wrote is grounded so the report shows which
kinds of claim the model invents.
"""

from __future__ import annotations

import copy
import hashlib
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopstream.events import GenerationPath, ProductUpsertedPayload
from shopstream_describer.claims import FactIndex, ground
from shopstream_describer.compliance import Lexicon
from shopstream_describer.facts import ProductFacts
from shopstream_describer.generation import GenerationRequest
from shopstream_describer.pipeline import DescriberPipeline, DescriptionJob, Generator, tidy
from shopstream_describer.prompts import ChatPrompt
from shopstream_describer.quality import coverage
from shopstream_describer.text import has_cjk, is_chinese
from shopstream_describer.text_metrics import (
    corpus_bleu,
    distinct_n,
    median_and_mean,
    rouge_l,
    tokens,
)

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
_GENERATED_PATHS = {GenerationPath.GENERATED.value, GenerationPath.REGENERATED.value}


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


def held_out(row: EvalRow, share: int = 5) -> bool:
    """Whether `row` is in the held-out split (1 in `share`), by a hash of its content.

    Tuning trains on the other rows, so a description of a held-out row is measured on copy
    the model never saw; the same rule wherever a row sits in its file.
    """
    content = json.dumps(
        [row.payload.title, sorted(row.payload.attributes.items()), row.reference],
        ensure_ascii=False,
    )
    return int(hashlib.sha256(content.encode("utf-8")).hexdigest()[:8], 16) % share == 0


def select_split(rows: Sequence[EvalRow], split: str) -> list[EvalRow]:
    """``all``, ``train`` (not held out) or ``test`` (held out)."""
    if split == "all":
        return list(rows)
    if split not in ("train", "test"):
        raise ValueError(f"split must be all, train or test, not {split!r}")
    return [row for row in rows if held_out(row) == (split == "test")]


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
    rows: Sequence[EvalRow],
    pipeline: DescriberPipeline,
    lexicon: Lexicon,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Describe `rows` and measure the published texts.

    `progress` is called after each batch with the number of products finished so far.
    """
    facts = [ProductFacts.from_payload(row.payload) for row in rows]
    jobs = [DescriptionJob(item, item.locale, lexicon) for item in facts]
    tapped, candidates = _tapped(pipeline)
    started = time.perf_counter()
    results = []
    for start in range(0, len(jobs), batch_size):
        results += tapped.describe(jobs[start : start + batch_size])
        if progress is not None:
            progress(len(results))
    seconds = time.perf_counter() - started
    clean_unsupported = clean_findings = clean = 0
    coverages, description_coverages = [], []
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
    texts = [
        _Described(
            _language(item.locale),
            result.description,
            row.reference or None,
            result.quality.path.value,
        )
        for item, result, row in zip(facts, results, rows, strict=True)
    ]
    languages = sorted({text.language for text in texts})
    by_language: dict[str, dict[str, Any]] = {}
    for language in languages:
        subset = [text for text in texts if text.language == language]
        by_language[language] = {"rows": len(subset), **_text_figures(subset)}
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
        **_text_figures(texts),
        "items_per_second": count / seconds if seconds else 0.0,
        "seconds": seconds,
        "reference_unsupported_per_text": (
            statistics.fmean(reference_unsupported) if reference_unsupported else None
        ),
        "reference_compliance_hits": sum(len(lexicon.scan(text)) for _, text in references),
        **_candidate_claims(candidates, jobs, pipeline),
        **({"by_language": by_language} if len(languages) > 1 else {}),
    }


def _language(locale: str) -> str:
    return "zh" if is_chinese(locale) else "en"


@dataclass(frozen=True)
class _Described:
    language: str
    description: str
    reference: str | None
    path: str


def _text_figures(texts: Sequence[_Described]) -> dict[str, Any]:
    """Reference overlap, diversity, length and generated share of published descriptions.

    Chinese is counted in characters, English in words (`text_metrics.tokens`); over a file that
    mixes both, each text keeps its own unit and the figures pool them.
    """
    tokenised = [tokens(text.description, text.language) for text in texts]
    pairs = [
        (candidate, tokens(text.reference, text.language))
        for candidate, text in zip(tokenised, texts, strict=True)
        if text.reference
    ]
    chars = [len(text.description) for text in texts]
    words = [
        len(candidate)
        for candidate, text in zip(tokenised, texts, strict=True)
        if text.language == "en"
    ]
    chars_median, chars_mean = median_and_mean(chars)
    words_median, words_mean = median_and_mean(words)
    generated = sum(text.path in _GENERATED_PATHS for text in texts)
    return {
        "reference_rows": len(pairs),
        "rouge_l_f1": (
            statistics.fmean(rouge_l(candidate, reference) for candidate, reference in pairs)
            if pairs
            else None
        ),
        "bleu_4": (
            corpus_bleu(
                [candidate for candidate, _ in pairs], [reference for _, reference in pairs]
            )
            if pairs
            else None
        ),
        "distinct_2": distinct_n(tokenised, 2),
        "description_chars_median": chars_median or 0,
        "description_chars_mean": chars_mean or 0.0,
        "description_words_median": words_median,
        "description_words_mean": words_mean,
        "generated_share": generated / len(texts) if texts else 0.0,
    }


def _prompt_key(prompt: ChatPrompt) -> str:
    return json.dumps(prompt, ensure_ascii=False, sort_keys=True, default=str)


class _Tap:
    """A generator that keeps every completion it returns, keyed by its prompt."""

    def __init__(self, inner: Generator, seen: list[tuple[str, str]]) -> None:
        self.inner = inner
        self.seen = seen

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def model_revision(self) -> str:
        return self.inner.model_revision

    def supports(self, locale: str) -> bool:
        return self.inner.supports(locale)

    def generate(self, request: GenerationRequest) -> list[str]:
        outputs = self.inner.generate(request)
        self.seen += zip(map(_prompt_key, request.prompts), outputs, strict=True)
        return outputs


def _tapped(pipeline: DescriberPipeline) -> tuple[DescriberPipeline, list[tuple[str, str]]]:
    """A shallow copy of `pipeline` whose generators record each candidate they write."""
    seen: list[tuple[str, str]] = []
    tapped = copy.copy(pipeline)
    tapped.generators = [_Tap(generator, seen) for generator in pipeline.generators]
    return tapped, seen


def _candidate_claims(
    candidates: Sequence[tuple[str, str]],
    jobs: Sequence[DescriptionJob],
    pipeline: DescriberPipeline,
) -> dict[str, Any]:
    """Unsupported claims per kind over every candidate a generator wrote, as the gate saw it."""
    owners: dict[str, DescriptionJob] = {}
    for job in jobs:
        if pipeline.generates(job.locale):
            owners.setdefault(_prompt_key(pipeline.description_prompt(job)), job)
    kinds: Counter[str] = Counter()
    counted = 0
    for prompt, raw in candidates:
        owner = owners.get(prompt)
        if owner is None:
            continue
        counted += 1
        text = tidy(raw, pipeline.options.max_description_chars, owner.locale)
        kinds.update(claim.kind for claim in ground(text, FactIndex.of([owner.facts])).unsupported)
    return {
        "candidates": counted,
        "candidate_unsupported_by_kind": dict(sorted(kinds.items())),
    }
