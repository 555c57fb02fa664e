"""The sentiment service, declared once: its settings, topics, factory, demo step and commands."""

from __future__ import annotations

from shopstream.services import ServiceSpec, TopicUse
from shopstream_sentiment.config import SentimentSettings


def topic_use(settings: SentimentSettings) -> TopicUse:
    topics = settings.topics
    # Rebuilds its rolling insight windows from its own compacted output on start.
    return TopicUse(
        consumes=(topics.reviews,),
        produces=(topics.sentiment, topics.insights),
        loads=(topics.insights,),
        compacted=frozenset({topics.insights}),
    )


SPEC = ServiceSpec.of_package(
    "sentiment",
    SentimentSettings,
    topic_use,
    {
        "sentiment train": "train",
        "eval sentiment": "evaluate",
        "eval sentiment-aspects": "evaluate_aspects",
    },
)
