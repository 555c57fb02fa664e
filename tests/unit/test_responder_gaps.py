"""Knowledge gaps summarised for the help centre's writers: per tenant, by nearest article."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shopstream.events import KnowledgeGapFound
from shopstream_responder.gaps import NO_NEAREST, summarise_gaps

pytestmark = pytest.mark.unit
START = datetime(2026, 12, 1, tzinfo=UTC)


def gap(tenant: str, question: str, nearest: str | None, minute: int) -> KnowledgeGapFound:
    payload = {
        "conversation_id": f"c-{minute}",
        "question": question,
        "locale": "en",
        "intent": "shipping",
        "coverage": 0.1,
        "nearest": None
        if nearest is None
        else {"doc_id": nearest, "passage_id": f"{nearest}#0", "score": 0.7},
    }
    return KnowledgeGapFound(
        tenant_id=tenant,
        occurred_at=START + timedelta(minutes=minute),
        causation_id="00000000-0000-0000-0000-000000000001",
        producer={"name": "responder", "version": "test"},
        lineage={"model_id": "m", "model_revision": "r"},
        payload=payload,
    )


def test_gaps_are_grouped_per_tenant_by_nearest_article_with_the_latest_questions() -> None:
    events = [
        gap("a", "Do you ship to Mars?", "shipping", 1),
        gap("a", "Can you deliver by drone?", "shipping", 2),
        gap("a", "Do you ship to Mars?", "shipping", 3),
        gap("a", "Do you sell garden gnomes?", None, 4),
        gap("b", "Gift wrapping?", "returns", 5),
    ]
    [first, second] = summarise_gaps(events, examples=5)
    assert (first.tenant_id, first.questions) == ("a", 4)
    shipping, nowhere = first.ranked()
    assert (shipping.nearest_doc, shipping.questions) == ("shipping", 3)
    assert shipping.latest == ["Do you ship to Mars?", "Can you deliver by drone?"], "newest first"
    assert shipping.intents == {"shipping": 3}
    assert nowhere.nearest_doc == NO_NEAREST
    assert (second.tenant_id, second.questions) == ("b", 1)


def test_one_tenant_and_a_bounded_number_of_examples() -> None:
    events = [gap("a", f"question {n}", "faq", n) for n in range(10)]
    events.append(gap("b", "other shop", "faq", 11))
    [only] = summarise_gaps(events, examples=2, tenant_id="a")
    assert only.tenant_id == "a"
    [group] = only.ranked()
    assert group.latest == ["question 9", "question 8"]
    assert summarise_gaps(events, tenant_id="nobody") == []
