"""Check a text against a product: grounding, compliance and attribute coverage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shopstream.events import ComplianceFinding, GenerationPath, QualityReport
from shopstream_describer.claims import FactIndex, FoundClaim, Grounding, ground
from shopstream_describer.compliance import Lexicon
from shopstream_describer.facts import ProductFacts
from shopstream_describer.text import normalise

MAX_REPORTED = 200


@dataclass(frozen=True)
class Check:
    grounding: Grounding
    violations: int
    coverage: float

    @property
    def unsupported(self) -> list[FoundClaim]:
        return self.grounding.unsupported

    @property
    def clean(self) -> bool:
        return not self.grounding.unsupported and self.violations == 0

    @property
    def problems(self) -> int:
        return len(self.grounding.unsupported) + self.violations


def coverage(products: Sequence[ProductFacts], text: str) -> float:
    """Share of the products' descriptive facts whose value the text states."""
    facts = [fact for product in products for fact in product.descriptive()]
    if not facts:
        return 1.0
    haystack = normalise(text)
    return sum(normalise(fact.value) in haystack for fact in facts) / len(facts)


def check(text: str, products: Sequence[ProductFacts], index: FactIndex, lexicon: Lexicon) -> Check:
    return Check(
        grounding=ground(text, index),
        violations=len(lexicon.scan(text)),
        coverage=coverage(products, text),
    )


def report(
    final: Check,
    *,
    path: GenerationPath,
    attempts: int,
    findings: Sequence[ComplianceFinding],
    review_required: bool,
) -> QualityReport:
    """The quality report of a published text: `final` is the check of exactly that text."""
    grounded, unsupported = final.grounding.report_claims()
    return QualityReport(
        grounded_claims=grounded[:MAX_REPORTED],
        unsupported_claims=unsupported[:MAX_REPORTED],
        attribute_coverage=round(min(1.0, max(0.0, final.coverage)), 4),
        compliance_findings=list(findings)[:MAX_REPORTED],
        path=path,
        attempts=attempts,
        review_required=review_required or not final.clean,
    )
