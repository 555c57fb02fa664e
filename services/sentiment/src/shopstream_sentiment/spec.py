"""The sentiment service, declared once: its settings, topics, factory, demo step and commands."""

from __future__ import annotations

from shopstream.services import CommandSpec, ServiceSpec, TopicUse
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


SPEC = ServiceSpec(
    name="sentiment",
    settings=SentimentSettings,
    topics=topic_use,
    factory="shopstream_sentiment.app:build_service",
    demo="shopstream_sentiment.demo:demo_step",
    commands=(
        CommandSpec("sentiment", "train", "shopstream_sentiment.cli:train"),
        CommandSpec("eval", "sentiment", "shopstream_sentiment.cli:evaluate"),
        CommandSpec("eval", "sentiment-aspects", "shopstream_sentiment.cli:evaluate_aspects"),
    ),
)
