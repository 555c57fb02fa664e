"""The describer, declared once: its settings, topics, factory, demo step and commands."""

from __future__ import annotations

from shopstream.services import CommandSpec, ServiceSpec, TopicUse
from shopstream_describer.config import DescriberSettings


def topic_use(settings: DescriberSettings) -> TopicUse:
    topics = settings.topics
    # The products topic is also read in full outside the group (every replica's product table),
    # and its own descriptions on start, to skip products whose text did not change.
    return TopicUse(
        consumes=(topics.products, topics.copy_requests),
        produces=(topics.descriptions, topics.copies),
        loads=(topics.products, topics.descriptions),
        compacted=frozenset({topics.products, topics.descriptions}),
    )


SPEC = ServiceSpec(
    name="describer",
    settings=DescriberSettings,
    topics=topic_use,
    factory="shopstream_describer.app:build_service",
    demo="shopstream_describer.demo:demo_step",
    commands=(
        CommandSpec("eval", "describer", "shopstream_describer.cli:evaluate"),
        CommandSpec("describer", "tune", "shopstream_describer.cli:tune"),
        CommandSpec("describer", "export-adapter", "shopstream_describer.cli:export_adapter"),
    ),
)
