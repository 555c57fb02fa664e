"""The responder's own metrics, next to the runtime's, on the service's explicit registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from shopstream_responder.knowledge import KnowledgeIndex


class ResponderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        prefix = "shopstream_responder"
        self.answers = Counter(
            f"{prefix}_answers_total",
            "Answers by detected intent and hand-off reason (none: answered without hand-off).",
            ["intent", "handoff"],
            registry=registry,
        )
        self.answer_texts = Counter(
            f"{prefix}_answer_texts_total",
            "Answer texts sent (hand-offs without text excluded) by source: extractive, "
            "rephrased (the generator's reply passed the support check) or rephrase_rejected "
            "(it did not; the extractive text was sent).",
            ["source"],
            registry=registry,
        )
        self.knowledge_gaps = Counter(
            f"{prefix}_knowledge_gaps_total",
            "Questions the shop's knowledge does not cover (hand-off not_covered), each also "
            "published as knowledge.gap_found; per-tenant detail is in those events, not here.",
            registry=registry,
        )
        self.injection_attempts = Counter(
            f"{prefix}_injection_attempts_total",
            "Questions that try to instruct the assistant; they are answered like any other.",
            registry=registry,
        )
        self.knowledge_records = Counter(
            f"{prefix}_knowledge_records_total",
            "Knowledge and catalogue records by outcome: upserted, unchanged, deleted, rejected.",
            ["status"],
            registry=registry,
        )
        self.passages = Gauge(
            f"{prefix}_knowledge_passages",
            "Passages in this replica's index, all tenants together.",
            registry=registry,
        )
        self.tenants = Gauge(
            f"{prefix}_knowledge_tenants",
            "Tenants with at least one passage in this replica's index.",
            registry=registry,
        )
        self.vector_bytes = Gauge(
            f"{prefix}_knowledge_vector_bytes",
            "Bytes of passage vectors held in memory.",
            registry=registry,
        )
        self.catch_up_seconds = Gauge(
            f"{prefix}_knowledge_catch_up_seconds",
            "Time the start-up read of the knowledge and catalogue topics to their end took.",
            registry=registry,
        )

    def observe_index(self, index: KnowledgeIndex) -> None:
        stats = index.stats()
        self.passages.set(stats.passages)
        self.tenants.set(stats.tenants)
        self.vector_bytes.set(stats.vector_bytes)
