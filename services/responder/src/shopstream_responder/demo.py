"""The responder part of `shopstream demo`: a sample shop's help centre and its customers.

The shop's knowledge (Chinese and English) and a second shop's conflicting policy go onto the
knowledge topic; the service starts, reads them like a global table, and answers a few customer
questions, among them one that must be handed off and one injection attempt. Answers are read
back from Kafka like any help desk would, not taken from the service's memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shopstream import demos
from shopstream.events import KnowledgeUpserted, ProductUpserted, QuestionAsked
from shopstream.kafka_io import publish_events, results_of
from shopstream.runtime.admin import ensure_topics
from shopstream.services import DemoOptions
from shopstream.settings import KafkaSettings
from shopstream_responder.app import KnowledgeSync, build_service
from shopstream_responder.config import ResponderSettings

SHOWN_ANSWER_CHARS = 90


def demo_shop() -> dict[str, Any]:
    """The sample shop shipped with the package (``data/demo_shop.json``)."""
    return demos.package_json("shopstream_responder", "demo_shop.json")


@dataclass
class ResponderDemoOutcome:
    asked: int
    answered: int
    handed_off: int
    seconds: float
    model_load_seconds: float
    handoff_reasons: dict[str, int] = field(default_factory=dict)


def _events(shop: dict[str, Any]) -> tuple[list[KnowledgeUpserted], list[ProductUpserted]]:
    tenant = shop["tenant_id"]
    other = shop["other_shop"]
    knowledge = [KnowledgeUpserted(tenant_id=tenant, payload=doc) for doc in shop["knowledge"]]
    knowledge += [
        KnowledgeUpserted(tenant_id=other["tenant_id"], payload=doc) for doc in other["knowledge"]
    ]
    products = [ProductUpserted(tenant_id=tenant, payload=item) for item in shop["products"]]
    return knowledge, products


def _row(question: QuestionAsked, answer: dict[str, Any]) -> tuple[Text | str, ...]:
    payload = answer["payload"]
    handoff = payload["handoff"]
    text = payload["answer"] or ""
    shown = text if len(text) <= SHOWN_ANSWER_CHARS else text[: SHOWN_ANSWER_CHARS - 1] + "…"
    citations = ", ".join(f"{c['passage_id']} ({c['score']:.2f})" for c in payload["citations"])
    outcome = (
        Text(f"hand-off: {handoff['reason']}", style="yellow")
        if handoff["required"]
        else Text("answered", style="green")
    )
    return (
        question.payload.text,
        payload["intent"],
        shown or Text("-", style="dim"),
        citations or Text("-", style="dim"),
        f"{payload['confidence']:.2f}",
        outcome,
    )


async def run_responder_demo(
    console: Console, kafka: KafkaSettings, *, within_seconds: float = 600.0
) -> ResponderDemoOutcome:
    """Publish the sample shop's knowledge, start the responder, ask, and print the answers."""
    shop = demo_shop()
    settings = ResponderSettings(kafka=kafka, http_port=0)
    topics = settings.topics
    knowledge, products = _events(shop)
    await ensure_topics(kafka, topics.specs())
    await publish_events(kafka, topics.knowledge, knowledge)
    await publish_events(kafka, topics.products, products)
    service = build_service(settings)
    load_seconds = await demos.start_in_view(
        console, service, "responder: loading the encoder and reading the knowledge topic..."
    )
    stats = service.component(KnowledgeSync).index.stats()
    console.print(
        f"responder ready in {load_seconds:.1f} s: {stats.passages} passages of "
        f"{stats.documents} documents for {stats.tenants} shops"
    )
    questions = [
        QuestionAsked(
            tenant_id=shop["tenant_id"],
            payload={"conversation_id": f"demo-{number}", **question},
        )
        for number, question in enumerate(shop["questions"])
    ]
    asked_at = time.perf_counter()
    try:
        await publish_events(kafka, topics.questions, questions)
        answers = await results_of(kafka, topics.answers, questions, within=within_seconds)
    finally:
        await service.stop()
    seconds = time.perf_counter() - asked_at
    table = Table(
        "question", "intent", "answer", "citations (score)", "conf.", "outcome",
        title=f"answer.produced for {shop['tenant_id']} on {topics.answers}",
    )  # fmt: skip
    reasons: dict[str, int] = {}
    for question in questions:
        answer = answers.get(str(question.event_id))
        if answer is None:
            table.add_row(question.payload.text, "", Text("no answer", style="red"), "", "", "")
            continue
        table.add_row(*_row(question, answer))
        reason = answer["payload"]["handoff"]["reason"]
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + 1
    console.print(table)
    handed_off = sum(reasons.values())
    return ResponderDemoOutcome(
        asked=len(questions),
        answered=len(answers) - handed_off,
        handed_off=handed_off,
        seconds=seconds,
        model_load_seconds=load_seconds,
        handoff_reasons=reasons,
    )


async def demo_step(options: DemoOptions) -> bool:
    """`shopstream demo`'s responder step: every question answered or handed off."""
    outcome = await run_responder_demo(options.console, options.kafka)
    return outcome.answered + outcome.handed_off == outcome.asked
