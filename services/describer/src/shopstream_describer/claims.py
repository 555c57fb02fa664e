"""Find the factual claims in a text and check each against the product's facts.

A claim is a span that states something a shopper could hold the shop to: a number with a
unit, a size, a material, a colour, a certification, a brand or model name, an origin, a
warranty term, a product feature (bluetooth, 可调节) or a functional/quality property
(breathable, 透气, durable). The extractor is deliberately eager: a false alarm costs a
regeneration, a missed invention ends up on a product page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from shopstream.events import Claim
from shopstream_describer.facts import Fact, ProductFacts
from shopstream_describer.text import normalise

_UNITS: dict[str, tuple[str, str]] = {
    # spelling (casefolded) -> (canonical unit, claim kind)
    **dict.fromkeys(("cm", "centimetre", "centimetres", "厘米"), ("cm", "dimension")),
    **dict.fromkeys(("mm", "millimetre", "millimetres", "毫米"), ("mm", "dimension")),
    **dict.fromkeys(("m", "metre", "metres", "meter", "meters", "米"), ("m", "dimension")),
    **dict.fromkeys(("inch", "inches", "in.", '"', "英寸", "寸"), ("inch", "dimension")),
    **dict.fromkeys(("ft", "feet", "foot"), ("ft", "dimension")),
    **dict.fromkeys(("kg", "kgs", "kilogram", "kilograms", "公斤", "千克"), ("kg", "weight")),
    **dict.fromkeys(("g", "gm", "gms", "gram", "grams", "克"), ("g", "weight")),
    **dict.fromkeys(("斤",), ("jin", "weight")),
    **dict.fromkeys(("lb", "lbs", "pound", "pounds"), ("lb", "weight")),
    **dict.fromkeys(("oz", "ounce", "ounces"), ("oz", "weight")),
    **dict.fromkeys(("ml", "millilitre", "millilitres", "毫升"), ("ml", "capacity")),
    **dict.fromkeys(("l", "litre", "litres", "liter", "liters", "升"), ("l", "capacity")),
    **dict.fromkeys(("mah", "毫安", "毫安时"), ("mah", "capacity")),
    **dict.fromkeys(("gb", "g内存"), ("gb", "capacity")),
    **dict.fromkeys(("tb",), ("tb", "capacity")),
    **dict.fromkeys(("w", "watt", "watts", "瓦"), ("w", "power")),
    **dict.fromkeys(("v", "volt", "volts", "伏"), ("v", "power")),
    **dict.fromkeys(("hz", "ghz", "mhz"), ("hz", "power")),
    **dict.fromkeys(("%", "percent", "per cent"), ("%", "percentage")),
    **dict.fromkeys(("hour", "hours", "hr", "hrs", "小时"), ("hour", "duration")),
    **dict.fromkeys(("day", "days", "天"), ("day", "duration")),
    **dict.fromkeys(("month", "months", "个月"), ("month", "duration")),
    **dict.fromkeys(("year", "years", "yr", "yrs", "年"), ("year", "duration")),
    **dict.fromkeys(("pcs", "pieces", "piece", "pack", "件", "片", "只"), ("piece", "quantity")),
    **dict.fromkeys(("码",), ("size", "size")),
    # Currencies: a price stated in a text must be the product's own price.
    **dict.fromkeys(("元", "块", "块钱", "rmb", "yuan", "cny"), ("cny", "price")),
    **dict.fromkeys(("usd", "dollar", "dollars"), ("usd", "price")),
    **dict.fromkeys(("eur", "euro", "euros"), ("eur", "price")),
    **dict.fromkeys(("gbp",), ("gbp", "price")),
    **dict.fromkeys(("inr", "rupee", "rupees"), ("inr", "price")),
}
_CURRENCY_SIGNS = {"$": "usd", "€": "eur", "£": "gbp", "¥": "cny", "￥": "cny", "₹": "inr"}
_CURRENCY_FIRST = re.compile(
    r"(?:([$€£¥￥₹])|\b(rs\.?|inr|usd|eur|gbp|cny|rmb)\s?)\s?(\d+(?:[.,]\d+)?)", re.IGNORECASE
)
_CURRENCY_CODES = {"rs": "inr", "rs.": "inr", "rmb": "cny"}
_NUMBER = r"(\d+(?:[.,]\d+)?)"
_UNIT_ALTERNATION = "|".join(sorted((re.escape(unit) for unit in _UNITS), key=len, reverse=True))
_NUMBER_WITH_UNIT = re.compile(
    _NUMBER + r"\s?(?:-|to|~|至|到)?\s?(?:\d+(?:[.,]\d+)?)?\s?(" + _UNIT_ALTERNATION + r")"
    r"(?![a-z])",
    re.IGNORECASE,
)
_SIZE = re.compile(
    r"(?<![A-Za-z])(?:size\s+)?(XXXL|XXL|XL|XS|XXS|[2-6]XL)(?![A-Za-z])|\bsize\s+(\d{1,2}|[SML])\b",
    re.IGNORECASE,
)
_MODEL_NAME = re.compile(r"(?<![\w-])([A-Z]{1,5}-?\d{2,6}[A-Z]{0,3})(?![\w-])")
_BRAND_EN = re.compile(r"\b(?:by|from) +((?:[A-Z][\w&'.-]*)(?: +[A-Z][\w&'.-]*){0,2})")
_BRAND_ZH = re.compile(r"来自([^\s，。、！？,.!?]{1,8}?)的|([A-Za-z\u4e00-\u9fff]{1,8})品牌|BRAND")
_CAPITALISED = re.compile(r"\b(?:[A-Z][a-z]+|[A-Z]{2,}[a-z]*)\b")
# Capitalised words that are ordinary English when a small model capitalises them for emphasis.
_NOT_NAMES = {
    "i",
    "the",
    "a",
    "an",
    "this",
    "it",
    "its",
    "perfect",
    "new",
    "shop",
    "buy",
    "order",
    "now",
    "style",
    "stylish",
    "classic",
    "premium",
    "comfort",
    "comfortable",
    "elegant",
    "casual",
    "men",
    "women",
    "unisex",
    "boys",
    "girls",
    "kids",
    "summer",
    "winter",
    "spring",
    "autumn",
    "fall",
    "monday",
    "friday",
    "sale",
    "free",
    "limited",
    "edition",
    "collection",
    "ok",
}
_TERM_KINDS = (
    "material",
    "colour",
    "feature",
    "property",
    "detail",
    "origin",
    "certification",
    "warranty",
)
# A fact that negates a term does not support it: `不可机洗` is no ground for "机洗".
_NEGATIONS = (
    *("不", "非", "无", "没有", "勿", "不可", "不能"),
    *("not ", "non-", "non ", "no ", "without "),
)
_NEGATIVE_VALUES = {"否", "无", "不", "没有", "no", "none", "false", "n/a", "not applicable"}


@dataclass(frozen=True, slots=True)
class FoundClaim:
    kind: str
    text: str
    canonical: str
    start: int
    end: int


@dataclass(frozen=True)
class Grounding:
    grounded: list[tuple[FoundClaim, Fact]]
    unsupported: list[FoundClaim]

    def report_claims(self) -> tuple[list[Claim], list[Claim]]:
        return (
            [Claim(kind=c.kind, text=c.text, attribute=fact.key) for c, fact in self.grounded],
            [Claim(kind=c.kind, text=c.text) for c in self.unsupported],
        )


@cache
def _vocabulary() -> dict[str, dict[str, list[str]]]:
    raw = (
        resources.files("shopstream_describer")
        .joinpath("data", "claim_terms.json")
        .read_text(encoding="utf-8")
    )
    vocabulary: dict[str, dict[str, list[str]]] = json.loads(raw)
    return vocabulary


@cache
def _supported_by() -> dict[str, tuple[str, ...]]:
    """Other wordings a fact may use for a term (`stretch` is supported by `spandex`)."""
    return {
        _loose(normalise(term)): tuple(normalise(other) for other in others)
        for term, others in _vocabulary()["_supported_by"].items()
    }


@cache
def _term_patterns() -> list[tuple[str, re.Pattern[str]]]:
    vocabulary = _vocabulary()
    patterns: list[tuple[str, re.Pattern[str]]] = []
    for kind in _TERM_KINDS:
        terms = sorted({t for words in vocabulary[kind].values() for t in words}, key=len)
        patterns.extend((kind, _term_regex(term)) for term in reversed(terms))
    return patterns


def _term_regex(term: str) -> re.Pattern[str]:
    escaped = re.escape(term)
    if re.search(r"[\u3400-\u9fff]", term):
        return re.compile(escaped)
    # Latin terms match whole words only ("tan" is not in "tank", "ce" not in "price").
    return re.compile(r"(?<![A-Za-z0-9])" + escaped + r"(?![A-Za-z0-9])", re.IGNORECASE)


def _number(value: str) -> str:
    number = float(value.replace(",", "."))
    return f"{number:g}"


def extract_claims(text: str) -> list[FoundClaim]:
    """Claims in `text`, longest first where spans overlap, in order of appearance."""
    found: list[FoundClaim] = []
    for match in _NUMBER_WITH_UNIT.finditer(text):
        unit, kind = _UNITS[match.group(2).casefold()]
        canonical = f"{_number(match.group(1))} {unit}"
        found.append(FoundClaim(kind, match.group(0).strip(), canonical, *match.span()))
    for match in _CURRENCY_FIRST.finditer(text):
        code = match.group(1) and _CURRENCY_SIGNS[match.group(1)]
        if not code:
            spelled = match.group(2).casefold()
            code = _CURRENCY_CODES.get(spelled, spelled)
        canonical = f"{_number(match.group(3))} {code}"
        found.append(FoundClaim("price", match.group(0).strip(), canonical, *match.span()))
    for match in _SIZE.finditer(text):
        size = (match.group(1) or match.group(2)).upper()
        found.append(FoundClaim("size", match.group(0), size.casefold(), *match.span()))
    found.extend(
        FoundClaim("model_name", match.group(1), match.group(1).casefold(), *match.span(1))
        for match in _MODEL_NAME.finditer(text)
    )
    found.extend(
        FoundClaim(kind, match.group(0), normalise(match.group(0)), *match.span())
        for kind, pattern in _term_patterns()
        for match in pattern.finditer(text)
    )
    for pattern in (_BRAND_EN, _BRAND_ZH):
        for match in pattern.finditer(text):
            group = next(
                (index for index in (1, 2) if pattern.groups >= index and match.group(index)), 0
            )
            name = match.group(group)
            found.append(FoundClaim("brand", name, normalise(name), *match.span(group)))
    found.extend(
        FoundClaim("brand", match.group(0), normalise(match.group(0)), *match.span())
        for match in _CAPITALISED.finditer(text)
        if _mid_sentence(text, match.start()) and match.group(0).casefold() not in _NOT_NAMES
    )
    return _without_overlaps(found)


def _mid_sentence(text: str, start: int) -> bool:
    """A capitalised word inside a sentence is a name; at a sentence or line start it is not."""
    before = text[:start].rstrip()
    return bool(before) and "\n" not in text[len(before) : start] and before[-1] not in ".!?:;\"'(-"


def _without_overlaps(claims: list[FoundClaim]) -> list[FoundClaim]:
    kept: list[FoundClaim] = []
    for claim in sorted(claims, key=lambda c: (-(c.end - c.start), c.start)):
        if all(claim.end <= other.start or claim.start >= other.end for other in kept):
            kept.append(claim)
    return sorted(kept, key=lambda c: c.start)


@dataclass(frozen=True)
class FactIndex:
    """A product's facts prepared for grounding: their text and the claims they make."""

    sources: tuple[Fact, ...]
    normalised: tuple[str, ...]
    canonical: dict[str, Fact]

    @classmethod
    def of(cls, products: Sequence[ProductFacts], extra: Sequence[Fact] = ()) -> FactIndex:
        """`extra` adds other texts a claim may rest on, e.g. a campaign's brief."""
        sources = (*(source for product in products for source in product.sources()), *extra)
        canonical: dict[str, Fact] = {}
        for source in sources:
            for claim in extract_claims(source.value):
                if not _negated(source.value, claim.start):
                    canonical.setdefault(claim.canonical, source)
        return cls(sources, tuple(normalise(source.value) for source in sources), canonical)

    def support(self, claim: FoundClaim) -> Fact | None:
        if claim.canonical in self.canonical:
            return self.canonical[claim.canonical]
        needle = normalise(claim.text)
        if not needle:
            return None
        needles = (needle, *_supported_by().get(_loose(needle), ()))
        for wording in needles:
            for source, text in zip(self.sources, self.normalised, strict=True):
                if _contains(text, wording):
                    return source
        # An attribute's name is a fact too: `warranty: 5 years` supports "warranty", but
        # `防水: 否` supports nothing.
        for source in self.sources:
            if normalise(source.value) in _NEGATIVE_VALUES:
                continue
            if any(_contains(normalise(source.key), wording) for wording in needles):
                return source
        return None


def _loose(text: str) -> str:
    """Hyphens as spaces: "machine-washable" and "machine washable" are one wording."""
    return text.replace("-", " ")


def _negated(text: str, start: int) -> bool:
    return text[:start].casefold().endswith(_NEGATIONS)


def _contains(haystack: str, needle: str) -> bool:
    """`needle` occurs in `haystack` (a whole word if Latin) and at least once not negated."""
    if re.search(r"[\u3400-\u9fff]", needle):
        pattern = re.compile(re.escape(needle))
    else:
        haystack, needle = _loose(haystack), _loose(needle)
        pattern = re.compile(r"(?<![a-z0-9])" + re.escape(needle) + r"(?![a-z0-9])")
    return any(not _negated(haystack, match.start()) for match in pattern.finditer(haystack))


def ground(text: str, index: FactIndex) -> Grounding:
    grounded: list[tuple[FoundClaim, Fact]] = []
    unsupported: list[FoundClaim] = []
    for claim in extract_claims(text):
        fact = index.support(claim)
        if fact is None:
            unsupported.append(claim)
        else:
            grounded.append((claim, fact))
    return Grounding(grounded, unsupported)


def unsupported_terms(index: FactIndex, language: str) -> list[str]:
    """The vocabulary's claim terms in ``language`` that the facts do not support.

    Generation is steered away from them (see ``DescriberPipeline.avoid``), so a small model
    spends its attempts on sentences the gate can accept instead of inventing "breathable".
    """
    terms: list[str] = []
    for kind in _TERM_KINDS:
        for term in _vocabulary()[kind].get(language, []):
            claim = FoundClaim(kind, term, normalise(term), 0, len(term))
            if index.support(claim) is None:
                terms.append(term)
    return terms
