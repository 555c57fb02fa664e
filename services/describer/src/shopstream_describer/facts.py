"""A product reduced to the facts a text may state, and the hash that decides regeneration."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from shopstream.events import Price, ProductUpsertedPayload
from shopstream_describer.text import normalise

_VALUE_SEPARATORS = re.compile(r"\s*[、，,;；|]\s*")
# Attributes that identify or price a product rather than describe it: they ground claims but
# a description is not expected to repeat them.
_NOT_DESCRIPTIVE = {"sku", "id", "ean", "gtin", "upc", "price", "价格", "url"}


@dataclass(frozen=True, slots=True)
class Fact:
    key: str
    value: str


@dataclass(frozen=True)
class ProductFacts:
    product_id: str
    title: str
    locale: str
    brand: str | None = None
    category: str | None = None
    attributes: tuple[Fact, ...] = ()
    """One fact per value: `颜色: 黑色、白色` becomes two facts with the key `颜色`."""
    price: Price | None = None
    merchant_text: str | None = None

    @classmethod
    def from_payload(cls, payload: ProductUpsertedPayload) -> ProductFacts:
        attributes = tuple(
            Fact(key.strip(), value)
            for key, raw in payload.attributes.items()
            for value in split_values(raw)
        )
        return cls(
            product_id=payload.product_id,
            title=payload.title.strip(),
            locale=payload.locale,
            brand=(payload.brand or "").strip() or None,
            category=(payload.category or "").strip() or None,
            attributes=attributes,
            price=payload.price,
            merchant_text=payload.description,
        )

    def descriptive(self) -> list[Fact]:
        """The facts attribute coverage is measured over: brand, category, attributes."""
        facts = [Fact("brand", self.brand)] if self.brand else []
        if self.category:
            facts.append(Fact("category", self.category))
        facts += [fact for fact in self.attributes if fact.key.casefold() not in _NOT_DESCRIPTIVE]
        return _unique(facts)

    def sources(self) -> list[Fact]:
        """Every text a claim may rest on, each with the attribute it comes from."""
        facts = [Fact("title", self.title), *self.descriptive()]
        facts += [fact for fact in self.attributes if fact not in facts]
        if self.price is not None:
            facts.append(Fact("price", f"{self.price.amount:g} {self.price.currency}"))
        if self.merchant_text:
            facts.append(Fact("description", self.merchant_text))
        return facts

    def source_text(self) -> str:
        return normalise("\n".join(fact.value for fact in self.sources()))

    def canonical(self) -> dict[str, object]:
        return {
            "title": self.title,
            "locale": self.locale,
            "brand": self.brand,
            "category": self.category,
            "attributes": [[fact.key, fact.value] for fact in self.attributes],
            "price": None if self.price is None else self.price.model_dump(mode="json"),
            "merchant_text": self.merchant_text,
        }


def split_values(raw: str) -> list[str]:
    return [value for value in _VALUE_SEPARATORS.split(raw.strip()) if value]


def content_hash(facts: ProductFacts, target_locale: str, *lineage_parts: str) -> str:
    """Same product content, target locale, model, prompt and lexicon -> same hash."""
    document = json.dumps(
        {"product": facts.canonical(), "target_locale": target_locale, "lineage": lineage_parts},
        ensure_ascii=False,
        sort_keys=True,
    )
    return "sha256:" + hashlib.sha256(document.encode("utf-8")).hexdigest()[:40]


def _unique(facts: list[Fact]) -> list[Fact]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for fact in facts:
        marker = (fact.key, normalise(fact.value))
        if marker not in seen:
            seen.add(marker)
            kept.append(fact)
    return kept
