"""The responder service: settings, model, knowledge index and follower wired onto the runtime.

Questions are consumed by the consumer group; the knowledge and catalogue topics are read in
full by every replica (see ``follower``), before the first question and then continuously.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry

from shopstream.events import QuestionAsked
from shopstream.runtime.lifecycle import Component
from shopstream.runtime.service import BatchService, ModelLifecycle, ServiceContext
from shopstream_responder import __version__
from shopstream_responder.config import ResponderSettings
from shopstream_responder.follower import KnowledgeFollower
from shopstream_responder.handlers import ResponderPredictor, build_question_handler
from shopstream_responder.intents import IntentClassifier, IntentRules
from shopstream_responder.knowledge import Document, KnowledgeIndex, PassageVectors
from shopstream_responder.metrics import ResponderMetrics
from shopstream_responder.model import ResponderModel
from shopstream_responder.spec import SPEC


class ResponderModelLike(ResponderPredictor, ModelLifecycle, Protocol):
    """What the service needs from a model: lifecycle, passage embedding, batched answers."""

    def embed_documents(self, documents: Sequence[Document]) -> list[PassageVectors]: ...


class KnowledgeSync:
    """The knowledge index every replica holds in full (a service component): caught up with
    the knowledge and catalogue topics before the first question, then followed until the
    service stops. `metrics` are the responder's own, which the handler counts into too."""

    def __init__(
        self,
        settings: ResponderSettings,
        embed: Callable[[Sequence[Document]], Awaitable[list[PassageVectors]]],
        index: KnowledgeIndex,
        metrics: ResponderMetrics,
    ) -> None:
        self.index = index
        self.metrics = metrics
        self._catch_up_timeout_seconds = settings.catch_up_timeout_seconds
        self.follower = KnowledgeFollower(settings, index, embed, metrics)

    async def start(self) -> None:
        await self.follower.start()
        await self.follower.wait_caught_up(self._catch_up_timeout_seconds)

    async def stop(self) -> None:
        await self.follower.stop()


def responder_service(
    settings: ResponderSettings,
    model: ResponderModelLike,
    index: KnowledgeIndex,
    registry: CollectorRegistry,
) -> BatchService[QuestionAsked]:
    """The responder over a given knowledge index (tests pass one already loaded)."""
    metrics = ResponderMetrics(registry)

    def components(context: ServiceContext) -> list[Component]:
        # Passages are embedded on the service's one inference thread, timed with every other
        # model call.
        embed = functools.partial(context.inference.run, model.embed_documents)
        return [KnowledgeSync(settings, embed, index, metrics)]

    return BatchService(
        **SPEC.identity(settings, __version__),
        accepts=QuestionAsked,
        build_handler=lambda context: build_question_handler(
            context,
            model,
            index,
            settings.topics.answers,
            metrics,
            settings.topics.knowledge_gaps,
        ),
        model=model,
        components=components,
        registry=registry,
    )


def build_service(
    settings: ResponderSettings | None = None, *, model: ResponderModelLike | None = None
) -> BatchService[QuestionAsked]:
    """The responder service; `model` replaces the configured model (tests pass fakes)."""
    settings = settings or ResponderSettings()
    rules = IntentRules.from_file(settings.intent_rules)
    chosen = model or ResponderModel(
        settings.model, settings.answering, rules, rephrase=settings.rephrase
    )
    index = KnowledgeIndex(topic_of=IntentClassifier(rules).rule_intent)
    return responder_service(settings, chosen, index, CollectorRegistry(auto_describe=True))
