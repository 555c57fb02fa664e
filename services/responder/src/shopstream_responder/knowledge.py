"""The shops' knowledge: documents cut into passages, and a per-tenant vector index.

Isolation is structural: every passage lives in exactly one tenant's index, a search is given a
tenant's snapshot and nothing else, so no question can reach another shop's passages however it
is phrased. A snapshot is immutable (the matrix is rebuilt on the next search after a change), so
the inference thread reads it while the knowledge follower keeps applying updates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from shopstream.events import Intent, KnowledgeKind, ProductUpsertedPayload
from shopstream_responder.config import ChunkingConfig
from shopstream_responder.text import language_of, normalise, split_sentences, weighted_length

FloatMatrix = npt.NDArray[np.float32]


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


@dataclass(frozen=True, slots=True)
class Passage:
    doc_id: str
    passage_id: str
    heading: str
    text: str
    kind: KnowledgeKind
    language: str
    product_id: str | None


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


@dataclass(frozen=True, slots=True)
class PassageVectors:
    """Unit vectors of a document's passages: of the heading and text together, and of the
    heading alone (matched against the question both ways, see ``answering.search``)."""

    bodies: FloatMatrix
    headings: FloatMatrix

    def __len__(self) -> int:
        return int(self.bodies.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.bodies.nbytes + self.headings.nbytes)


HEADING_SHARE = 2 / 3
"""Weight of the question-to-heading cosine in a passage's score; the rest goes to the
question-to-passage cosine. FAQ headings are the strongest evidence there is."""

TopicOf = Callable[[str], Intent | None]
"""The intent a heading is about by the intent rules, or None when no rule says."""


@dataclass(frozen=True)
class TenantSnapshot:
    """One tenant's passages and their unit vectors, frozen at one moment."""

    tenant_id: str
    passages: tuple[Passage, ...]
    vectors: PassageVectors
    languages: npt.NDArray[np.str_]
    """Per passage, its document's language (``en``, ``zh``, ...)."""
    topics: npt.NDArray[np.str_]
    """Per passage, the intent its heading is about by the rules; empty when no rule says."""
    product_rows: dict[str, npt.NDArray[np.intp]]
    """Rows of each product's facts; rows of no product are general knowledge."""
    general_rows: npt.NDArray[np.intp]
    document_starts: npt.NDArray[np.intp]
    """First row of each document, ascending: a document's passages are consecutive rows."""

    def __len__(self) -> int:
        return len(self.passages)

    def document_rows(self, row: int) -> range:
        """The rows of the document that ``row`` belongs to."""
        ordinal = int(np.searchsorted(self.document_starts, row, side="right")) - 1
        end = (
            int(self.document_starts[ordinal + 1])
            if ordinal + 1 < len(self.document_starts)
            else len(self.passages)
        )
        return range(int(self.document_starts[ordinal]), end)

    def searchable_rows(self, product_id: str | None) -> npt.NDArray[np.intp] | None:
        """Rows a question may use: None for all of them (no product named), else the
        general knowledge and the named product's facts."""
        if product_id is None:
            return None
        named = self.product_rows.get(product_id)
        if named is None:
            return self.general_rows
        return np.concatenate([self.general_rows, named])


@dataclass
class _DocumentEntry:
    document: Document
    passages: tuple[Passage, ...]
    vectors: PassageVectors
    topics: tuple[str, ...]


@dataclass
class _TenantIndex:
    documents: dict[DocumentKey, _DocumentEntry] = field(default_factory=dict)
    snapshot: TenantSnapshot | None = None


@dataclass(frozen=True)
class IndexStats:
    tenants: int
    documents: int
    passages: int
    vector_bytes: int


class KnowledgeIndex:
    """Per-tenant documents and vectors. Mutated from one task (the knowledge follower);
    snapshots may be read from any thread.

    Vectors are held once: after a snapshot is built, each document's vectors become views
    into the snapshot's matrices, so the per-document copies are freed.
    """

    def __init__(self, topic_of: TopicOf | None = None) -> None:
        self._topic_of = topic_of
        self._tenants: dict[str, _TenantIndex] = {}
        self._documents = 0
        self._passages = 0
        self._vector_bytes = 0

    def upsert(self, document: Document, vectors: PassageVectors) -> None:
        if len(vectors) != len(document.passages) or vectors.headings.shape != vectors.bodies.shape:
            raise ValueError(
                f"{len(document.passages)} passages but vectors of shape "
                f"{vectors.bodies.shape}/{vectors.headings.shape} for {document.key}"
            )
        tenant = self._tenants.setdefault(document.key.tenant_id, _TenantIndex())
        previous = tenant.documents.pop(document.key, None)
        if previous is not None:
            self._count(previous, -1)
        if document.passages:
            entry = _DocumentEntry(
                document,
                _passages_of(document),
                PassageVectors(_frozen(vectors.bodies), _frozen(vectors.headings)),
                self._topics(document),
            )
            tenant.documents[document.key] = entry
            self._count(entry, 1)
        tenant.snapshot = None
        self._drop_if_empty(document.key.tenant_id)

    def _topics(self, document: Document) -> tuple[str, ...]:
        by_heading: dict[str, str] = {}
        for chunk in document.passages:
            if chunk.heading not in by_heading:
                topic = self._topic_of(chunk.heading) if self._topic_of else None
                by_heading[chunk.heading] = topic.value if topic is not None else ""
        return tuple(by_heading[chunk.heading] for chunk in document.passages)

    def delete(self, key: DocumentKey) -> bool:
        tenant = self._tenants.get(key.tenant_id)
        if tenant is None or key not in tenant.documents:
            return False
        self._count(tenant.documents.pop(key), -1)
        tenant.snapshot = None
        self._drop_if_empty(key.tenant_id)
        return True

    def _count(self, entry: _DocumentEntry, sign: int) -> None:
        self._documents += sign
        self._passages += sign * len(entry.passages)
        self._vector_bytes += sign * entry.vectors.nbytes

    def _drop_if_empty(self, tenant_id: str) -> None:
        if not self._tenants[tenant_id].documents:
            del self._tenants[tenant_id]

    def document(self, key: DocumentKey) -> Document | None:
        tenant = self._tenants.get(key.tenant_id)
        entry = tenant.documents.get(key) if tenant else None
        return entry.document if entry else None

    def snapshot(self, tenant_id: str) -> TenantSnapshot | None:
        """The tenant's current passages; None when the shop has no knowledge at all."""
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            return None
        if tenant.snapshot is None:
            tenant.snapshot = _build_snapshot(tenant_id, list(tenant.documents.values()))
        return tenant.snapshot

    def stats(self) -> IndexStats:
        return IndexStats(
            tenants=len(self._tenants),
            documents=self._documents,
            passages=self._passages,
            vector_bytes=self._vector_bytes,
        )

    def tenants(self) -> list[str]:
        return sorted(self._tenants)


def _frozen(matrix: FloatMatrix) -> FloatMatrix:
    frozen = np.ascontiguousarray(matrix, dtype=np.float32)
    frozen.setflags(write=False)
    return frozen


def _passages_of(document: Document) -> tuple[Passage, ...]:
    language = language_of(document.locale)
    citation_id = document.key.citation_id
    return tuple(
        Passage(
            doc_id=citation_id,
            passage_id=f"{citation_id}#{number}",
            heading=chunk.heading,
            text=chunk.text,
            kind=document.kind,
            language=language,
            product_id=document.product_id,
        )
        for number, chunk in enumerate(document.passages)
    )


def _build_snapshot(tenant_id: str, entries: list[_DocumentEntry]) -> TenantSnapshot:
    passages = [passage for entry in entries for passage in entry.passages]
    bodies = _frozen(np.concatenate([entry.vectors.bodies for entry in entries]))
    headings = _frozen(np.concatenate([entry.vectors.headings for entry in entries]))
    product_rows: dict[str, list[int]] = {}
    general_rows: list[int] = []
    starts: list[int] = []
    start = 0
    for entry in entries:
        starts.append(start)
        end = start + len(entry.passages)
        product_id = entry.document.product_id
        rows = range(start, end)
        if product_id is None:
            general_rows.extend(rows)
        else:
            product_rows.setdefault(product_id, []).extend(rows)
        entry.vectors = PassageVectors(bodies[start:end], headings[start:end])
        start = end
    return TenantSnapshot(
        tenant_id=tenant_id,
        passages=tuple(passages),
        vectors=PassageVectors(bodies, headings),
        languages=np.asarray([passage.language for passage in passages]),
        topics=np.asarray([topic for entry in entries for topic in entry.topics]),
        product_rows={
            product: np.asarray(rows, dtype=np.intp) for product, rows in product_rows.items()
        },
        general_rows=np.asarray(general_rows, dtype=np.intp),
        document_starts=np.asarray(starts, dtype=np.intp),
    )
