"""The responder, declared once: its settings, topics, factory, demo step and commands."""

from __future__ import annotations

from shopstream.services import ServiceSpec, TopicUse
from shopstream_responder.config import ResponderSettings


def topic_use(settings: ResponderSettings) -> TopicUse:
    topics = settings.topics
    # Product facts in answers are optional; without them the catalogue is not read.
    tables = (topics.knowledge, topics.products) if settings.product_facts else (topics.knowledge,)
    return TopicUse(
        consumes=(topics.questions,),
        produces=(topics.answers, topics.knowledge_gaps),
        loads=tables,
        compacted=frozenset(tables),
    )


SPEC = ServiceSpec.of_package(
    "responder",
    ResponderSettings,
    topic_use,
    {"eval responder": "evaluate", "responder gaps": "gaps"},
)
