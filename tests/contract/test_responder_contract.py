"""The responder under the service contract, on the hashing encoder (deterministic, no weights)."""

from __future__ import annotations

import json
import time
from typing import cast

from contract.base import (
    AnyService,
    Rejected,
    StatefulServiceContract,
    common_settings,
    until_sample,
)
from shopstream.events import Event, QuestionAsked
from shopstream.kafka_io import publish_events
from shopstream.settings import KafkaSettings, ServiceSettings
from shopstream_responder.app import build_service
from shopstream_responder.config import ResponderSettings
from support.kafka import collect, prefixed_topics
from support.responder import NORTH, hashing_model, hashing_settings, knowledge_events


def ask(text: str) -> QuestionAsked:
    return QuestionAsked(
        tenant_id=NORTH, payload={"conversation_id": f"c-{time.monotonic_ns()}", "text": text}
    )


class TestResponderContract(StatefulServiceContract):
    name = "responder"
    input = "questions"
    output = "answers"

    def settings(self, kafka: KafkaSettings, prefix: str) -> ServiceSettings:
        light = hashing_settings()
        return ResponderSettings(
            topics=prefixed_topics(
                prefix, "knowledge", "products", "questions", "answers", "knowledge_gaps"
            ),
            **common_settings(kafka, prefix),
            model=light.model,
            answering=light.answering,
        )

    def build(self, settings: ServiceSettings) -> AnyService:
        model = hashing_model()
        # Loaded here too: the in-memory tests never start the service, which loads it.
        model.load()
        return build_service(cast("ResponderSettings", settings), model=model)

    def valid_event(self, index: int) -> Event:
        return ask(f"Is shipping free for order {index}?")

    def rejected(self, settings: ServiceSettings) -> Rejected:
        empty = json.loads(ask("?").to_json())
        empty["payload"]["text"] = ""
        return Rejected(json.dumps(empty).encode(), "schema_violation")

    # The knowledge index is rebuilt from the knowledge and products topics on start.

    async def seed_state(self, service: AnyService, settings: ServiceSettings) -> None:
        await publish_events(settings.kafka, settings.topics.knowledge, knowledge_events())
        passages = f"{self.metric_prefix}_knowledge_passages"
        await until_sample(service, passages, bool)

    async def check_state_restored(self, service: AnyService, settings: ServiceSettings) -> None:
        kafka, topics = settings.kafka, settings.topics
        await publish_events(kafka, topics.questions, [ask("Is shipping free?")])
        (answer,) = await collect(kafka, topics.answers, 1, within=30)
        cited = [citation["doc_id"] for citation in answer["payload"]["citations"]]
        assert "shipping" in cited, "answered from the knowledge read back on start"
        assert "99 EUR" in answer["payload"]["answer"]
