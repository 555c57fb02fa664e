"""The responder service: settings, model, knowledge index and follower wired onto the runtime.

Questions are consumed by the consumer group; the knowledge and catalogue topics are read in
full by every replica (see ``follower``), before the first question and then continuously.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry

from shopstream.events import QuestionAsked
from shopstream.runtime.service import BatchService, ModelLifecycle, ServiceContext
from shopstream_responder import __version__
from shopstream_responder.config import ResponderSettings
from shopstream_responder.follower import KnowledgeFollower
from shopstream_responder.handlers import ResponderPredictor, build_question_handler
from shopstream_responder.intents import IntentClassifier, IntentRules
from shopstream_responder.knowledge import Document, KnowledgeIndex, PassageVectors
from shopstream_responder.metrics import ResponderMetrics
from shopstream_responder.model import ResponderModel

SERVICE_NAME = "responder"


class ResponderModelLike(ResponderPredictor, ModelLifecycle, Protocol):
    """What the service needs from a model: lifecycle, passage embedding, batched answers."""

    def embed_documents(self, documents: Sequence[Document]) -> list[PassageVectors]: ...


class ResponderService(BatchService[QuestionAsked]):
    """The batch service plus the knowledge follower, which stops before the model unloads."""

    def __init__(
        self,
        settings: ResponderSettings,
        model: ResponderModelLike,
        index: KnowledgeIndex,
        registry: CollectorRegistry,
    ) -> None:
        self.index = index
        self.responder_metrics = ResponderMetrics(registry)

        async def embed(documents: Sequence[Document]) -> list[PassageVectors]:
            return await asyncio.to_thread(model.embed_documents, documents)

        self.follower = KnowledgeFollower(settings, index, embed, self.responder_metrics)

        def catch_up_hook(_: ServiceContext) -> Callable[[], Awaitable[None]]:
            async def catch_up() -> None:
                await self.follower.start()
                await self.follower.wait_caught_up(settings.catch_up_timeout_seconds)

            return catch_up

        super().__init__(
            name=SERVICE_NAME,
            version=__version__,
            settings=settings,
            input_topics=[settings.topics.questions],
            output_topics=[settings.topics.answers, settings.topics.knowledge_gaps],
            accepts=QuestionAsked,
            build_handler=lambda context: build_question_handler(
                context,
                model,
                index,
                settings.topics.answers,
                self.responder_metrics,
                settings.topics.knowledge_gaps,
            ),
            model=model,
            startup_hooks=[catch_up_hook],
            registry=registry,
        )

    async def stop(self) -> None:
        await self.follower.stop()
        await super().stop()


def build_service(
    settings: ResponderSettings | None = None, *, model: ResponderModelLike | None = None
) -> ResponderService:
    """The responder service; `model` replaces the configured model (tests pass fakes)."""
    settings = settings or ResponderSettings()
    rules = IntentRules.from_file(settings.intent_rules)
    chosen = model or ResponderModel(
        settings.model, settings.answering, rules, rephrase=settings.rephrase
    )
    index = KnowledgeIndex(topic_of=IntentClassifier(rules).rule_intent)
    return ResponderService(settings, chosen, index, CollectorRegistry(auto_describe=True))
