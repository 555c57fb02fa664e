"""Generate, check, regenerate, repair, compose: how a text earns the right to be published.

Torch-free: the generator is anything with the `Generator` protocol, so the whole decision
path is unit-tested with scripted fakes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from shopstream.events import (
    Channel,
    ComplianceFinding,
    CopyVariant,
    GenerationPath,
    Lineage,
    QualityReport,
)
from shopstream.runtime.results import ServedModel
from shopstream_describer.claims import FactIndex, ground, unsupported_terms
from shopstream_describer.compliance import Lexicon
from shopstream_describer.composer import (
    COMPOSER_ID,
    COMPOSER_VERSION,
    compose_copy,
    compose_description,
)
from shopstream_describer.facts import Fact, ProductFacts
from shopstream_describer.generation import GenerationRequest
from shopstream_describer.prompts import ChatPrompt, as_data, channel_guidance, chat, prompt_version
from shopstream_describer.quality import Check, check, report
from shopstream_describer.text import (
    fit,
    has_cjk,
    is_chinese,
    join_sentences,
    normalise,
    sentences,
    similarity,
)

_CHATTER = re.compile(
    r"^\s*(sure|certainly|here is|here's|description:|product description:|copy:)[^\n]*?[:!.]?\s*$",
    re.IGNORECASE,
)
_MARKUP = re.compile(r"[*#`_>]+|^\s*[-•]\s*", re.MULTILINE)


class Generator(ServedModel, Protocol):
    """A text generator as the pipeline sees it; see `shopstream_describer.model`."""

    def supports(self, locale: str) -> bool: ...

    def generate(self, request: GenerationRequest) -> list[str]:
        """One completion per prompt of `request`, in order."""
        ...


@dataclass(frozen=True)
class PipelineOptions:
    max_attempts: int = 2
    """Generations per text before repair and then the composer take over."""
    description_tokens: int = 96
    copy_tokens: int = 64
    min_description_chars: int = 40
    min_generated_coverage: float = 0.25
    """Share of the product's facts a generated description must state to be publishable: a
    text with no unsupported claim can still be about something else entirely (a small base
    model wanders), and the claim check alone would pass it."""
    max_description_chars: int = 800
    near_duplicate: float = 0.7
    """Copy variants at least this similar (character trigram Jaccard) count as one."""
    copy_candidates_per_variant: int = 2
    channel_limits: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            "en": {"sms": 160, "push": 120, "email_subject": 60, "social_post": 280, "banner": 40},
            "zh": {"sms": 70, "push": 50, "email_subject": 30, "social_post": 140, "banner": 20},
        }
    )


@dataclass(frozen=True)
class DescriptionJob:
    facts: ProductFacts
    locale: str
    lexicon: Lexicon


@dataclass(frozen=True)
class DescriptionResult:
    description: str
    bullet_points: list[str]
    seo_title: str
    quality: QualityReport
    lineage: Lineage


@dataclass(frozen=True)
class CopyJob:
    products: list[ProductFacts]
    channel: Channel
    locale: str
    variants: int
    lexicon: Lexicon
    max_length: int | None = None
    tone: str | None = None
    audience: str | None = None
    brief: str | None = None


@dataclass(frozen=True)
class CopyResult:
    variants: list[CopyVariant]
    lineage: Lineage

    @property
    def review_required(self) -> bool:
        return any(variant.quality.review_required for variant in self.variants)


@dataclass
class _Candidate:
    text: str
    check: Check
    attempt: int


def tidy(raw: str, limit: int, locale: str = "en") -> str:
    """A small model's answer as publishable prose: no chatter, markup or cut-off sentence."""
    lines = [line for line in raw.splitlines() if line.strip() and not _CHATTER.match(line)]
    # U+FFFD: the model emitted half a character (a byte token), which must never be published.
    text = _MARKUP.sub("", " ".join(lines))
    text = re.sub(r"\s+", " ", text).strip().strip('"“”')
    parts = [part for part in sentences(text) if "\ufffd" not in part]
    if len(parts) > 1 and not re.search(r"[.!?。！？]$", parts[-1]):
        parts = parts[:-1]
    return fit(join_sentences(parts, locale), limit, locale)


def _language(locale: str) -> str:
    return "zh" if is_chinese(locale) else "en"


class DescriberPipeline:
    """`generators`: one, several (each locale goes to the first that supports it) or none."""

    def __init__(
        self,
        generators: Generator | Sequence[Generator] | None,
        options: PipelineOptions | None = None,
    ) -> None:
        if generators is None:
            self.generators: list[Generator] = []
        elif isinstance(generators, Sequence):
            self.generators = list(generators)
        else:
            self.generators = [generators]
        self.options = options or PipelineOptions()

    def generator_for(self, locale: str) -> Generator | None:
        return next((item for item in self.generators if item.supports(locale)), None)

    def generates(self, locale: str) -> bool:
        return self.generator_for(locale) is not None

    def lineage(self, locale: str) -> Lineage:
        generator = self.generator_for(locale)
        if generator is not None:
            return Lineage(
                model_id=generator.model_id,
                model_revision=generator.model_revision or "unknown",
                prompt_version=prompt_version(_language(locale)),
            )
        return Lineage(
            model_id=COMPOSER_ID, model_revision=COMPOSER_VERSION, prompt_version=COMPOSER_VERSION
        )

    def _generate(self, locales: Sequence[str], request: GenerationRequest) -> list[str]:
        """One completion per prompt, in order; each generator gets its locales' prompts at once."""
        groups: dict[int, list[int]] = {}
        for position, locale in enumerate(locales):
            generator = self.generator_for(locale)
            if generator is None:
                raise ValueError(f"no generator writes {locale!r}")
            groups.setdefault(self.generators.index(generator), []).append(position)
        outputs = [""] * len(request.prompts)
        for number, positions in groups.items():
            texts = self.generators[number].generate(request.subset(positions))
            for position, text in zip(positions, texts, strict=True):
                outputs[position] = text
        return outputs

    def _avoid_lists(
        self, jobs: Sequence[DescriptionJob | CopyJob], indexes: Sequence[FactIndex]
    ) -> list[list[str]]:
        """`avoid` per job; empty for jobs no generator writes, so the composer pays nothing."""
        return [
            self.avoid(job.lexicon, index, job.locale) if self.generates(job.locale) else []
            for job, index in zip(jobs, indexes, strict=True)
        ]

    def avoid(self, lexicon: Lexicon, index: FactIndex, locale: str) -> list[str]:
        """Phrases decoding should steer away from: the lexicon's terms in the locale's script
        and the claim vocabulary's terms the facts do not support."""
        language = _language(locale)
        terms = [term.term for term in lexicon.terms if (language == "zh") == has_cjk(term.term)]
        return [*terms, *unsupported_terms(index, language)]

    # Descriptions -------------------------------------------------------------------------

    def describe(self, jobs: Sequence[DescriptionJob]) -> list[DescriptionResult]:
        indexes = [FactIndex.of([job.facts]) for job in jobs]
        avoid = self._avoid_lists(jobs, indexes)
        chosen: dict[int, tuple[str, GenerationPath, int, list[ComplianceFinding]]] = {}
        best: dict[int, _Candidate] = {}
        pending = [i for i, job in enumerate(jobs) if self.generates(job.locale)]
        options = self.options
        for attempt in range(1, options.max_attempts + 1):
            if not pending:
                break
            outputs = self._generate(
                [jobs[i].locale for i in pending],
                GenerationRequest(
                    [self.description_prompt(jobs[i]) for i in pending],
                    attempt=attempt,
                    max_new_tokens=options.description_tokens,
                    avoid=[avoid[i] for i in pending],
                ),
            )
            still_pending = []
            for i, raw in zip(pending, outputs, strict=True):
                job = jobs[i]
                text = tidy(raw, options.max_description_chars, job.locale)
                result = check(text, [job.facts], indexes[i], job.lexicon)
                if self._acceptable(text, result):
                    path = GenerationPath.GENERATED if attempt == 1 else GenerationPath.REGENERATED
                    chosen[i] = (text, path, attempt, [])
                    continue
                previous = best.get(i)
                if previous is None or result.problems < previous.check.problems:
                    best[i] = _Candidate(text, result, attempt)
                still_pending.append(i)
            pending = still_pending
        for i in pending:
            repaired = self._repair(best[i].text, jobs[i], indexes[i]) if i in best else None
            if repaired is not None:
                chosen[i] = (
                    repaired[0],
                    GenerationPath.REPAIRED,
                    options.max_attempts,
                    repaired[1],
                )
        return [
            self._finish_description(job, indexes[i], chosen.get(i)) for i, job in enumerate(jobs)
        ]

    def _repair(
        self, text: str, job: DescriptionJob, index: FactIndex
    ) -> tuple[str, list[ComplianceFinding]] | None:
        kept = [part for part in sentences(text) if not ground(part, index).unsupported]
        repaired = job.lexicon.repair(join_sentences(kept, job.locale), job.locale)
        if repaired.flagged:
            return None
        if not self._acceptable(
            repaired.text, check(repaired.text, [job.facts], index, job.lexicon)
        ):
            return None
        return repaired.text, repaired.findings

    def _acceptable(self, text: str, result: Check) -> bool:
        options = self.options
        return (
            result.clean
            and len(text) >= options.min_description_chars
            and result.coverage >= options.min_generated_coverage
        )

    def _finish_description(
        self,
        job: DescriptionJob,
        index: FactIndex,
        chosen: tuple[str, GenerationPath, int, list[ComplianceFinding]] | None,
    ) -> DescriptionResult:
        composed = compose_description(job.facts, job.locale, job.lexicon)
        if chosen is None:
            attempts = self.options.max_attempts if self.generates(job.locale) else 0
            chosen = (composed.description, GenerationPath.COMPOSED, attempts, [])
        text, path, attempts, findings = chosen
        published = "\n".join([composed.seo_title, text, *composed.bullet_points])
        final = check(published, [job.facts], index, job.lexicon)
        return DescriptionResult(
            description=text,
            bullet_points=composed.bullet_points,
            seo_title=composed.seo_title,
            quality=report(
                final,
                path=path,
                attempts=attempts,
                findings=[*findings, *job.lexicon.findings(published)],
                review_required=path is GenerationPath.REPAIRED,
            ),
            lineage=self.lineage(job.locale),
        )

    def description_prompt(self, job: DescriptionJob) -> ChatPrompt:
        return chat(
            "describe",
            _language(job.locale),
            title=as_data(job.facts.title),
            facts=_fact_lines(job.facts),
        )

    # Copy ---------------------------------------------------------------------------------

    def limit(self, job: CopyJob) -> int:
        language = "zh" if is_chinese(job.locale) else "en"
        default = self.options.channel_limits[language][job.channel.value]
        return min(job.max_length, default) if job.max_length else default

    def copy(self, jobs: Sequence[CopyJob]) -> list[CopyResult]:
        indexes = [
            FactIndex.of(job.products, [Fact("brief", job.brief)] if job.brief else [])
            for job in jobs
        ]
        avoid = self._avoid_lists(jobs, indexes)
        accepted: dict[int, list[tuple[str, GenerationPath, int, list[ComplianceFinding]]]] = {
            i: [] for i in range(len(jobs))
        }
        rejected: dict[int, list[_Candidate]] = {i: [] for i in range(len(jobs))}
        pending = [i for i, job in enumerate(jobs) if self.generates(job.locale)]
        per_variant = self.options.copy_candidates_per_variant
        for attempt in range(1, self.options.max_attempts + 1):
            if not pending:
                break
            owners = [i for i in pending for _ in range(jobs[i].variants * per_variant)]
            outputs = self._generate(
                [jobs[i].locale for i in owners],
                GenerationRequest(
                    [self.copy_prompt(jobs[i]) for i in owners],
                    attempt=attempt + 1,  # always sampled: variants must differ
                    max_new_tokens=self.options.copy_tokens,
                    avoid=[avoid[i] for i in owners],
                ),
            )
            for i, raw in zip(owners, outputs, strict=True):
                job = jobs[i]
                text = tidy(raw, self.limit(job), job.locale)
                result = check(text, job.products, indexes[i], job.lexicon)
                texts = [item[0] for item in accepted[i]]
                wanted = len(texts) < job.variants and self._is_new(text, texts)
                if result.clean and len(text) >= 8 and wanted and _names(text, job.products):
                    path = GenerationPath.GENERATED if attempt == 1 else GenerationPath.REGENERATED
                    accepted[i].append((text, path, attempt, []))
                elif not result.clean:
                    rejected[i].append(_Candidate(text, result, attempt))
            pending = [i for i in pending if len(accepted[i]) < jobs[i].variants]
        return [
            self._finish_copy(job, indexes[i], accepted[i], rejected[i])
            for i, job in enumerate(jobs)
        ]

    def _finish_copy(
        self,
        job: CopyJob,
        index: FactIndex,
        accepted: list[tuple[str, GenerationPath, int, list[ComplianceFinding]]],
        rejected: list[_Candidate],
    ) -> CopyResult:
        limit = self.limit(job)
        attempts = self.options.max_attempts if self.generates(job.locale) else 0
        pool = list(accepted)
        fillers = [
            (text, GenerationPath.COMPOSED, attempts, list[ComplianceFinding]())
            for text in compose_copy(job.products, job.channel, job.locale, limit, job.lexicon)
        ]
        for candidate in rejected:
            kept = [
                part for part in sentences(candidate.text) if not ground(part, index).unsupported
            ]
            repaired = job.lexicon.repair(join_sentences(kept, job.locale), job.locale)
            if (
                len(repaired.text) >= 8
                and not repaired.flagged
                and _names(repaired.text, job.products)
            ):
                fillers.append(
                    (repaired.text, GenerationPath.REPAIRED, candidate.attempt, repaired.findings)
                )
        for filler in fillers:
            if len(pool) >= job.variants:
                break
            if self._is_new(filler[0], [item[0] for item in pool]):
                pool.append(filler)
        variants = []
        for text, path, tries, findings in pool:
            final = check(text, job.products, index, job.lexicon)
            variants.append(
                CopyVariant(
                    text=text,
                    quality=report(
                        final,
                        path=path,
                        attempts=tries,
                        findings=[*findings, *job.lexicon.findings(text)],
                        review_required=path is GenerationPath.REPAIRED,
                    ),
                )
            )
        return CopyResult(variants, self.lineage(job.locale))

    def _is_new(self, text: str, kept: list[str]) -> bool:
        return all(similarity(text, other) < self.options.near_duplicate for other in kept)

    def copy_prompt(self, job: CopyJob) -> ChatPrompt:
        language = _language(job.locale)
        words = _COPY_WORDS[language]
        return chat(
            "copy",
            language,
            channel=words.get(job.channel.value, job.channel.value.replace("_", " ")),
            guidance=channel_guidance(language).get(job.channel.value, ""),
            limit=self.limit(job),
            tone=as_data(job.tone or words["tone"]),
            audience=as_data(job.audience or words["audience"]),
            brief=as_data(job.brief or words["brief"]),
            products="\n\n".join(_product_block(product, language) for product in job.products[:3]),
        )


_COPY_WORDS = {
    "en": {"tone": "friendly", "audience": "all shoppers", "brief": "new products"},
    "zh": {
        "tone": "亲切",
        "audience": "所有顾客",
        "brief": "新品上架",
        "sms": "短信",
        "push": "推送",
        "email_subject": "邮件标题",
        "social_post": "社交媒体帖子",
        "banner": "横幅",
    },
}
"""Defaults and channel names the copy prompts use, per prompt language."""


def _names(text: str, products: Sequence[ProductFacts]) -> bool:
    """Whether copy is about the campaign's products: it names one (title, brand, category) or
    states one of their facts. Copy too short for the description's coverage floor can still be
    about something else entirely."""
    haystack = normalise(text)
    for product in products:
        names = [product.title, *(fact.value for fact in product.descriptive())]
        if any(normalise(name) in haystack for name in names if name):
            return True
    return False


def _fact_lines(facts: ProductFacts) -> str:
    lines = [f"- {as_data(fact.key)}: {as_data(fact.value)}" for fact in facts.descriptive()]
    return "\n".join(lines) or "- (no further facts)"


def _product_block(product: ProductFacts, language: str) -> str:
    name = "名称" if language == "zh" else "Name"
    return f"{name}: {as_data(product.title)}\n{_fact_lines(product)}"
