"""What the shop's knowledge is missing: `knowledge.gap_found` events summarised for the people
who write the help centre.

Questions handed off as ``not_covered`` are grouped per tenant by the passage they came closest
to (the article a new one would sit next to), with their intents and the latest questions
verbatim. Pure: events in, a summary out; ``shopstream responder gaps`` reads the topic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from shopstream.events import KnowledgeGapFound

NO_NEAREST = "-"
"""The group of gaps that came close to no passage at all."""


@dataclass
class GapGroup:
    """The uncovered questions of one tenant that came closest to one document."""

    nearest_doc: str
    questions: int = 0
    intents: Counter[str] = field(default_factory=Counter)
    latest: list[str] = field(default_factory=list)
    """The most recent distinct questions, newest first."""


@dataclass
class TenantGaps:
    tenant_id: str
    questions: int = 0
    groups: dict[str, GapGroup] = field(default_factory=dict)

    def ranked(self) -> list[GapGroup]:
        """Groups with the most questions first (ties by document id)."""
        return sorted(self.groups.values(), key=lambda group: (-group.questions, group.nearest_doc))


def summarise_gaps(
    gaps: Iterable[KnowledgeGapFound], *, examples: int = 3, tenant_id: str | None = None
) -> list[TenantGaps]:
    """Per tenant (most gaps first), the gaps grouped by nearest document; ``examples``
    latest distinct questions kept per group; only ``tenant_id``'s when given."""
    tenants: dict[str, TenantGaps] = {}
    ordered = sorted(gaps, key=lambda gap: gap.occurred_at, reverse=True)
    for gap in ordered:
        if tenant_id is not None and gap.tenant_id != tenant_id:
            continue
        tenant = tenants.setdefault(gap.tenant_id, TenantGaps(gap.tenant_id))
        nearest = gap.payload.nearest.doc_id if gap.payload.nearest else NO_NEAREST
        group = tenant.groups.setdefault(nearest, GapGroup(nearest))
        tenant.questions += 1
        group.questions += 1
        group.intents[gap.payload.intent.value] += 1
        if gap.payload.question not in group.latest and len(group.latest) < examples:
            group.latest.append(gap.payload.question)
    return sorted(tenants.values(), key=lambda tenant: (-tenant.questions, tenant.tenant_id))
