"""The recommender, declared once: its settings, topics, factory, demo step and commands."""

from __future__ import annotations

from shopstream.services import ServiceSpec, TopicUse
from shopstream_recommender.config import RecommenderSettings


def topic_use(settings: RecommenderSettings) -> TopicUse:
    topics = settings.topics
    # The catalogue is read in full outside the group, for item facts and availability.
    return TopicUse(
        consumes=(topics.activity, topics.recs_requests),
        produces=(topics.recs_results,),
        loads=(topics.products,),
        compacted=frozenset({topics.products}),
    )


SPEC = ServiceSpec.of_package(
    "recommender", RecommenderSettings, topic_use, {"eval recommender": "evaluate"}
)
