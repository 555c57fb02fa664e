"""The per-tenant vector index of knowledge passages, and the snapshots a search reads.

Isolation is structural: every passage lives in exactly one tenant's index, a search is given a
tenant's snapshot and nothing else, so no question can reach another shop's passages however it
is phrased. A snapshot is immutable (the matrix is rebuilt on the next search after a change), so
the inference thread reads it while the knowledge follower keeps applying updates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from shopstream.events import Intent, KnowledgeKind
from shopstream_responder.knowledge.documents import Document, DocumentKey
from shopstream_responder.text import language_of

FloatMatrix = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Passage:
    """One row of a tenant's index: a document's passage under the ids a citation shows."""

    doc_id: str
    passage_id: str
    heading: str
    text: str
    kind: KnowledgeKind
    language: str
    product_id: str | None


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
