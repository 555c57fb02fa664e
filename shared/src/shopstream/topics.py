"""The topic registry: every shared topic's default name and layout, all configurable.

Which topics exist, and which are compacted, comes from the installed services' specs
(`shopstream.services`): a topic no service reads or writes is not created.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

DEAD_LETTER_SUFFIX = ".dlq"
WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    compacted: bool
    partitions: int
    retention_ms: int
    replication_factor: int

    def config(self) -> dict[str, str]:
        if self.compacted:
            return {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
        return {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}


class TopicSettings(BaseModel):
    """Topic names (each env-overridable, e.g. `..._TOPICS__REVIEWS=acme.reviews`) and layout."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    products: str = "shop.catalog.products"
    copy_requests: str = "shop.marketing.copy-requests"
    knowledge: str = "shop.support.knowledge"
    questions: str = "shop.support.questions"
    activity: str = "shop.users.activity"
    recs_requests: str = "shop.recs.requests"
    reviews: str = "shop.reviews.submitted"
    descriptions: str = "shop.catalog.descriptions"
    copies: str = "shop.marketing.copies"
    answers: str = "shop.support.answers"
    knowledge_gaps: str = "shop.support.knowledge-gaps"
    recs_results: str = "shop.recs.results"
    sentiment: str = "shop.reviews.sentiment"
    insights: str = "shop.reviews.insights"

    partitions: int = Field(default=6, ge=1, le=10_000)
    """Partitions of every topic; `activity` and `recs_requests` must match (co-partitioned)."""
    replication_factor: int = Field(default=1, ge=1, le=10)
    retention_ms: int = Field(default=WEEK_MS, ge=60_000)
    """Retention of the non-compacted topics."""

    def spec(self, name: str, *, compacted: bool = False) -> TopicSpec:
        """Layout for a topic outside the registry (e.g. a test's or the echo service's)."""
        return TopicSpec(
            name=name,
            compacted=compacted,
            partitions=self.partitions,
            retention_ms=self.retention_ms,
            replication_factor=self.replication_factor,
        )

    def specs(self, extra: tuple[str, ...] = ()) -> list[TopicSpec]:
        """Every topic the installed services use of this registry (inputs, then outputs), the
        dead-letter topic of each consumed one, then `extra`; each service's spec says which."""
        # Imported here: the service specs import this module for `TopicSettings`.
        from shopstream.services import discover  # noqa: PLC0415

        uses = [spec.registry_use(self) for spec in discover().values() if spec.shares_registry]
        names = [name for use in uses for name in (*use.consumes, *use.loads)]
        names += [name for use in uses for name in use.produces]
        names += sorted({dead_letter_topic(name) for use in uses for name in use.consumes})
        names += extra
        compacted = {name for use in uses for name in use.compacted}
        # Two settings may name one topic (a single ordered stream read as two inputs).
        return [self.spec(name, compacted=name in compacted) for name in dict.fromkeys(names)]


def dead_letter_topic(topic: str) -> str:
    return topic + DEAD_LETTER_SUFFIX
