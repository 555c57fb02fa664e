"""The trust report attached to every generated text."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from shopstream.events.envelope import Label, Paragraph, StrictModel


class GenerationPath(StrEnum):
    GENERATED = "generated"
    REGENERATED = "regenerated"
    REPAIRED = "repaired"
    COMPOSED = "composed"


class Claim(StrictModel):
    kind: Label
    """What sort of fact: number_with_unit, material, colour, certification, brand, origin, ..."""
    text: Paragraph
    attribute: Label | None = None
    """The product attribute that supports the claim, when one does."""


class ComplianceFinding(StrictModel):
    term: Label
    rule: Label
    """Lexicon entry that matched, e.g. `zh.absolute_superlative` or `en.medical_claim`."""
    snippet: Paragraph
    action: Label
    """`removed`, `flagged`."""


class QualityReport(StrictModel):
    grounded_claims: list[Claim] = Field(default_factory=list, max_length=200)
    unsupported_claims: list[Claim] = Field(default_factory=list, max_length=200)
    attribute_coverage: float = Field(ge=0, le=1)
    compliance_findings: list[ComplianceFinding] = Field(default_factory=list, max_length=200)
    path: GenerationPath
    attempts: int = Field(ge=0, le=100)
    review_required: bool
