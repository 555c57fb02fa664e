"""The shops' knowledge: documents cut into passages (``documents``), and the per-tenant vector
index that searches read (``index``). Import from here; the split is for readers, not callers.
"""

from shopstream_responder.knowledge.documents import (
    PRODUCT_LABELS,
    Chunk,
    Document,
    DocumentKey,
    Source,
    chunk_document,
    product_document,
)
from shopstream_responder.knowledge.index import (
    HEADING_SHARE,
    IndexStats,
    KnowledgeIndex,
    Passage,
    PassageVectors,
    TenantSnapshot,
    TopicOf,
)

__all__ = [
    "HEADING_SHARE",
    "PRODUCT_LABELS",
    "Chunk",
    "Document",
    "DocumentKey",
    "IndexStats",
    "KnowledgeIndex",
    "Passage",
    "PassageVectors",
    "Source",
    "TenantSnapshot",
    "TopicOf",
    "chunk_document",
    "product_document",
]
