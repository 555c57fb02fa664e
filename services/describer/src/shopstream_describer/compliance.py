"""Advertising-compliance lexicon: find forbidden terms, repair or flag them, per tenant.

A lexicon is data (JSON, see ``data/compliance.json``). A tenant's own file is layered on the
defaults: it may add ``terms``, ``allow`` longer harmless words, and ``disable`` default terms.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shopstream.events import ComplianceFinding
from shopstream_describer.text import join_sentences, sentences

Action = Literal["repair", "flag"]


class LexiconTerm(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    term: str = Field(min_length=1, max_length=128)
    rule: str = Field(min_length=1, max_length=128)
    replacement: str | None = None
    """Repair the sentence by replacing the term with this; without it the sentence is dropped."""
    action: Action = "repair"


class LexiconFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    version: str = "unversioned"
    comment: str | None = Field(default=None, alias="_comment")
    terms: list[LexiconTerm] = Field(default_factory=list)
    allow: list[str] = Field(default_factory=list)
    disable: list[str] = Field(default_factory=list)

    @classmethod
    def read(cls, path: Path | None = None) -> LexiconFile:
        if path is None:
            raw = resources.files("shopstream_describer").joinpath("data", "compliance.json")
            return cls.model_validate_json(raw.read_text(encoding="utf-8"))
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


@dataclass(frozen=True, slots=True)
class Violation:
    term: LexiconTerm
    start: int
    end: int


@dataclass(frozen=True)
class Repair:
    text: str
    findings: list[ComplianceFinding]
    """Every violation of the original text, each with what was done about it."""

    @property
    def flagged(self) -> bool:
        return any(finding.action == "flagged" for finding in self.findings)


@dataclass(frozen=True)
class Lexicon:
    terms: tuple[LexiconTerm, ...]
    allow: tuple[str, ...] = ()
    version: str = "unversioned"
    _patterns: list[tuple[LexiconTerm, re.Pattern[str]]] = field(
        init=False, repr=False, compare=False, default_factory=list
    )

    @classmethod
    def layered(cls, base: LexiconFile, *overlays: LexiconFile) -> Lexicon:
        terms = {term.term.casefold(): term for term in base.terms}
        allow = set(base.allow)
        versions = [base.version]
        for overlay in overlays:
            for name in overlay.disable:
                terms.pop(name.casefold(), None)
            terms.update({term.term.casefold(): term for term in overlay.terms})
            allow.update(overlay.allow)
            versions.append(overlay.version)
        return cls(tuple(terms.values()), tuple(sorted(allow)), "+".join(versions))

    @cached_property
    def fingerprint(self) -> str:
        document = json.dumps(
            [[t.model_dump() for t in self.terms], list(self.allow)], sort_keys=True
        )
        return f"{self.version}:{hashlib.sha256(document.encode()).hexdigest()[:12]}"

    def _compiled(self) -> list[tuple[LexiconTerm, re.Pattern[str]]]:
        if not self._patterns:
            # Longest first, so "best-selling" is reported rather than the "best" inside it.
            for term in sorted(self.terms, key=lambda t: len(t.term), reverse=True):
                self._patterns.append((term, _pattern(term.term)))
        return self._patterns

    def scan(self, text: str) -> list[Violation]:
        allowed = [
            (match.start(), match.end())
            for word in self.allow
            for match in re.finditer(re.escape(word), text)
        ]
        found: list[Violation] = []
        for term, pattern in self._compiled():
            for match in pattern.finditer(text):
                start, end = match.span()
                if any(a <= start and end <= b for a, b in allowed):
                    continue
                if any(start < other.end and other.start < end for other in found):
                    continue
                found.append(Violation(term, start, end))
        return sorted(found, key=lambda violation: violation.start)

    def scrub(self, value: str) -> str:
        """`value` without any lexicon term: how the composer keeps attribute text compliant."""
        for violation in reversed(self.scan(value)):
            value = value[: violation.start] + value[violation.end :]
        return re.sub(r"\s{2,}", " ", value).strip(" -–,，、")

    def repair(self, text: str, locale: str) -> Repair:
        """Replace or drop what violates; `flag` terms stay and are reported as flagged."""
        kept: list[str] = []
        findings: list[ComplianceFinding] = []
        for sentence in sentences(text):
            violations = self.scan(sentence)
            if not violations:
                kept.append(sentence)
                continue
            repaired = sentence
            drop = False
            for violation in reversed(violations):
                term = violation.term
                if term.action == "flag":
                    findings.append(_finding(sentence, violation, "flagged"))
                    continue
                findings.append(_finding(sentence, violation, "removed"))
                if term.replacement is None:
                    drop = True
                else:
                    repaired = (
                        repaired[: violation.start] + term.replacement + repaired[violation.end :]
                    )
            if not drop:
                kept.append(repaired)
        return Repair(join_sentences(kept, locale), findings[::-1])

    def findings(self, text: str) -> list[ComplianceFinding]:
        """Violations left in a text that is about to be published: all flagged."""
        return [_finding(text, violation, "flagged") for violation in self.scan(text)]


def _pattern(term: str) -> re.Pattern[str]:
    escaped = re.escape(term)
    if re.match(r"[A-Za-z0-9]", term[0]):
        escaped = r"(?<![A-Za-z0-9])" + escaped
    if re.match(r"[A-Za-z0-9]", term[-1]):
        escaped += r"(?![A-Za-z0-9])"
    return re.compile(escaped, re.IGNORECASE)


def _finding(sentence: str, violation: Violation, action: str) -> ComplianceFinding:
    start = max(0, violation.start - 40)
    return ComplianceFinding(
        term=violation.term.term,
        rule=violation.term.rule,
        snippet=sentence[start : violation.end + 40],
        action=action,
    )


class Lexicons:
    """The default lexicon and each tenant's layered one, built once per tenant."""

    def __init__(
        self, tenant_files: Mapping[str, Path] | None = None, default_file: Path | None = None
    ) -> None:
        self._base = LexiconFile.read(default_file)
        self._tenant_files = dict(tenant_files or {})
        self.default = Lexicon.layered(self._base)
        self._tenants: dict[str, Lexicon] = {}

    def for_tenant(self, tenant_id: str) -> Lexicon:
        path = self._tenant_files.get(tenant_id)
        if path is None:
            return self.default
        if tenant_id not in self._tenants:
            self._tenants[tenant_id] = Lexicon.layered(self._base, LexiconFile.read(path))
        return self._tenants[tenant_id]
