"""Knowledge documents: shop records and catalogue products cut into passages under headings.

A passage is whole sentences under the heading it answers (an FAQ's question, else the title), so
the encoder sees each passage with its context. Nothing here knows about vectors or search.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from shopstream.events import KnowledgeKind, ProductUpsertedPayload
from shopstream_responder.config import ChunkingConfig
from shopstream_responder.text import language_of, normalise, split_sentences, weighted_length


class Source(StrEnum):
    """Where a document comes from; documents of different sources never replace each other."""

    KNOWLEDGE = "knowledge"
    CATALOG = "catalog"


@dataclass(frozen=True, slots=True)
class DocumentKey:
    tenant_id: str
    source: Source
    doc_id: str

    @property
    def citation_id(self) -> str:
        """The doc id a citation shows: the knowledge doc id, or ``product:<id>``."""
        return self.doc_id if self.source is Source.KNOWLEDGE else f"product:{self.doc_id}"


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage's text and its heading: the question it answers in an FAQ, else the title."""

    heading: str
    text: str

    def embedding_text(self) -> str:
        """What the encoder sees: the heading gives a passage its context."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


@dataclass(frozen=True, slots=True)
class Document:
    """A document ready to index: its passages and what they are about."""

    key: DocumentKey
    title: str
    passages: tuple[Chunk, ...]
    kind: KnowledgeKind
    locale: str
    product_id: str | None = None

    def content_signature(self) -> tuple[object, ...]:
        return (self.title, self.passages, self.kind, self.locale, self.product_id)


_QUESTION_MARK = re.compile(r"^(?:q|question|问|问题)\s*[:：.、]\s*", re.IGNORECASE)
_ANSWER_MARK = re.compile(r"^(?:a|answer|答|回答|答案)\s*[:：.、]\s*", re.IGNORECASE)
MAX_QUESTION_CHARS = 200


def _question_line(line: str) -> str | None:
    """The question an FAQ line asks (``Q: ...``, ``问：...`` or a short line ending in a
    question mark), or None."""
    marked = _QUESTION_MARK.match(line)
    if marked:
        return line[marked.end() :].strip() or None
    if line.endswith(("?", "？")) and weighted_length(line) <= MAX_QUESTION_CHARS:
        return line
    return None


def _sections(title: str, body: str) -> list[tuple[str, list[str]]]:
    """Paragraphs grouped under the heading they answer: the title until an FAQ question."""
    sections: list[tuple[str, list[str]]] = [(normalise(title), [])]
    for raw in re.split(r"\n\s*\n", body):
        lines = [normalise(line) for line in raw.splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            continue
        question = _question_line(lines[0])
        if question is not None:
            sections.append((question, []))
            lines = lines[1:]
            if not lines:
                continue
        lines[0] = _ANSWER_MARK.sub("", lines[0], count=1)
        sections[-1][1].append("\n".join(line for line in lines if line))
    return [(heading, paragraphs) for heading, paragraphs in sections if paragraphs]


def chunk_document(title: str, body: str, config: ChunkingConfig) -> tuple[Chunk, ...]:
    """Cut a body into passages of whole sentences under their heading, never across a blank
    line unless a paragraph is too short to stand alone (it goes with the next one)."""
    chunks: list[Chunk] = []
    for heading, paragraphs in _sections(title, body):
        merged: list[str] = []
        carry = ""
        for paragraph in paragraphs:
            text = f"{carry}\n{paragraph}" if carry else paragraph
            if weighted_length(text) < config.min_chars:
                carry = text
                continue
            merged.append(text)
            carry = ""
        if carry:
            if merged and weighted_length(merged[-1]) + weighted_length(carry) <= config.max_chars:
                merged[-1] = f"{merged[-1]}\n{carry}"
            else:
                merged.append(carry)
        chunks.extend(
            Chunk(heading, text)
            for paragraph in merged
            for text in _split_paragraph(paragraph, config.max_chars)
        )
    if not chunks and title.strip():
        chunks = [Chunk("", normalise(title))]
    return tuple(chunks[: config.max_passages_per_doc])


def _split_paragraph(paragraph: str, max_chars: int) -> Iterator[str]:
    if weighted_length(paragraph) <= max_chars:
        yield paragraph
        return
    current: list[str] = []
    size = 0
    for sentence in split_sentences(paragraph):
        length = weighted_length(sentence)
        if current and size + length > max_chars:
            yield _join(current)
            current, size = [], 0
        if length > max_chars:
            # One run-on "sentence" longer than a passage: cut it at the limit.
            step = max_chars if weighted_length(sentence) == len(sentence) else max_chars // 2
            yield from (sentence[i : i + step] for i in range(0, len(sentence), step))
            continue
        current.append(sentence)
        size += length
    if current:
        yield _join(current)


def _join(sentences: Sequence[str]) -> str:
    # Chinese sentences join without spaces; English ones with one.
    return "".join(
        sentence if index == 0 or re.match(r"[\u3400-\u9fff]", sentence) else f" {sentence}"
        for index, sentence in enumerate(sentences)
    )


PRODUCT_LABELS = {
    "en": {"brand": "Brand", "category": "Category", "price": "Price", "stock": "Availability",
           "in_stock": "in stock", "out_of_stock": "out of stock"},
    "zh": {"brand": "品牌", "category": "类目", "price": "价格", "stock": "库存",
           "in_stock": "有货", "out_of_stock": "缺货"},
}  # fmt: skip


def product_document(
    tenant_id: str, product: ProductUpsertedPayload, config: ChunkingConfig
) -> Document:
    """A product's catalogue facts as a document: one passage of facts, then its description."""
    language = "zh" if language_of(product.locale) == "zh" else "en"
    labels = PRODUCT_LABELS[language]
    separator = "：" if language == "zh" else ": "
    facts = [
        f"{labels['brand']}{separator}{product.brand}" if product.brand else "",
        f"{labels['category']}{separator}{product.category}" if product.category else "",
        *(f"{name}{separator}{value}" for name, value in product.attributes.items()),
        (
            f"{labels['price']}{separator}{product.price.amount:g} {product.price.currency}"
            if product.price
            else ""
        ),
        f"{labels['stock']}{separator}"
        + (labels["in_stock"] if product.available else labels["out_of_stock"]),
    ]
    body = "\n".join(fact for fact in facts if fact)
    if product.description:
        body += "\n\n" + product.description
    return Document(
        key=DocumentKey(tenant_id, Source.CATALOG, product.product_id),
        title=product.title,
        passages=chunk_document(product.title, body, config),
        kind=KnowledgeKind.PRODUCT_FACT,
        locale=product.locale,
        product_id=product.product_id,
    )
