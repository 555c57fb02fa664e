"""The describer, declared once: its settings, topics, factory, demo step and commands."""

from __future__ import annotations

from shopstream.services import ServiceSpec, TopicUse
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


SPEC = ServiceSpec.of_package(
    "describer",
    DescriberSettings,
    topic_use,
    {
        "eval describer": "evaluate",
        "describer tune": "tune",
        "describer export-adapter": "export_adapter",
    },
)
