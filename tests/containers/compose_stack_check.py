"""The compose stack end to end, from the host: run by scripts/compose_check.sh once the stack
is up (not collected by a plain `pytest`: the file name does not start with `test_`).

One event of each input type of the running services goes to the stack's broker on
localhost:9092; every result topic a single event can produce must then hold a result for
it, and Prometheus must report every running service's scrape target up. (The responder's
knowledge-gap topic needs a shop with enough FAQ articles to learn coverage: not checked.)
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from typing import Any

import pytest

from shopstream.events import (
    CopyRequested,
    Event,
    KnowledgeUpserted,
    QuestionAsked,
    ReviewSubmitted,
)
from shopstream.kafka_io import publish_events
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings
from support.describer import bilingual_products
from support.kafka import collect
from support.recommender import activity, request

BOOTSTRAP = os.environ.get("SHOPSTREAM_COMPOSE_BOOTSTRAP", "localhost:9092")
PROMETHEUS = os.environ.get("SHOPSTREAM_COMPOSE_PROMETHEUS", "http://127.0.0.1:9090")
SERVICES = os.environ.get(
    "SHOPSTREAM_COMPOSE_SERVICES", "sentiment describer responder recommender"
).split()

pytestmark = pytest.mark.containers


def inputs(tenant: str, topics: TopicSettings) -> dict[str, dict[str, list[Event]]]:
    """Per service: its input topics and one event for each (the product serves three)."""
    (product, _) = bilingual_products(tenant)
    product_id = product.payload.product_id
    faq = (
        "Q: How long does delivery take?\nA: Orders arrive within 3 working days in Germany.\n\n"
        "Q: When will my parcel arrive?\nA: Orders arrive within 3 working days in Germany."
    )
    review = ReviewSubmitted(
        tenant_id=tenant,
        payload={
            "review_id": "r1",
            "product_id": product_id,
            "text": "Great bag, sturdy canvas and the colour is lovely.",
            "locale": "en",
            "rating": 5,
        },
    )
    copy = CopyRequested(
        tenant_id=tenant,
        payload={
            "campaign_id": "c1",
            "product_ids": [product_id],
            "channel": "email_subject",
            "variants": 1,
        },
    )
    knowledge = KnowledgeUpserted(
        tenant_id=tenant,
        payload={"doc_id": "delivery", "title": "Delivery", "body": faq, "kind": "faq"},
    )
    question = QuestionAsked(
        tenant_id=tenant,
        payload={"conversation_id": "q1", "text": "How long does delivery take?"},
    )
    return {
        "sentiment": {topics.reviews: [review]},
        "describer": {topics.products: [product], topics.copy_requests: [copy]},
        "responder": {topics.products: [product], topics.knowledge: [knowledge],
                      topics.questions: [question]},
        "recommender": {topics.products: [product],
                        topics.activity: [activity("u1", product_id, tenant=tenant)]},
    }  # fmt: skip


async def results_for(kafka: KafkaSettings, topic: str, tenant: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        documents = await collect(kafka, topic, 10**6, within=10)
        mine = [d for d in documents if d.get("tenant_id") == tenant]
        if mine:
            return mine
    return []


def scrape_targets() -> dict[str, str]:
    with urllib.request.urlopen(f"{PROMETHEUS}/api/v1/targets", timeout=10) as answer:
        body = json.load(answer)
    return {target["labels"]["job"]: target["health"] for target in body["data"]["activeTargets"]}


@pytest.mark.timeout(1800)
async def test_one_event_of_each_input_type_gets_a_result_on_every_result_topic() -> None:
    kafka = KafkaSettings(bootstrap_servers=BOOTSTRAP)
    topics = TopicSettings()
    tenant = f"compose-{uuid.uuid4().hex[:6]}"
    # The topic job creates only the topics of the services in its image's environment, and
    # the broker does not auto-create: publish only what the running services read.
    events: dict[str, list[Event]] = {}
    for service in SERVICES:
        events |= inputs(tenant, topics)[service]
    for topic, batch in events.items():
        await publish_events(kafka, topic, batch)
    if "recommender" in SERVICES:
        # Asked after the activity, so the recommender has something to answer from.
        await publish_events(kafka, topics.recs_requests, [request("u1", tenant=tenant)])

    produced = {
        "sentiment": (topics.sentiment, topics.insights),
        "describer": (topics.descriptions, topics.copies),
        "responder": (topics.answers,),
        "recommender": (topics.recs_results,),
    }
    result_topics = [topic for service in SERVICES for topic in produced[service]]
    assert result_topics, f"no known service in {SERVICES}"
    missing = [t for t in result_topics if not await results_for(kafka, t, tenant)]
    assert missing == [], f"no result for tenant {tenant} on {missing}"


def test_prometheus_scrapes_every_service() -> None:
    deadline = time.monotonic() + 120
    health: dict[str, str] = {}
    while time.monotonic() < deadline:
        health = scrape_targets()
        if all(health.get(f"shopstream-{service}") == "up" for service in SERVICES):
            return
        time.sleep(5)
    pytest.fail(f"scrape targets: {health}")
