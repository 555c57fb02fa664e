"""The echo service as the real-broker tests run it: its topics and group named for one test."""

from __future__ import annotations

from typing import Any

from shopstream.echo import EchoSettings
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings


def echo_settings(
    kafka: KafkaSettings, source: str, *, partitions: int = 3, **overrides: Any
) -> EchoSettings:
    """Echo reading `source`, writing `<source>.out` in the group `<source>.group`, its topics
    created with `partitions` each and its HTTP server on a free port (unless `overrides`
    say otherwise)."""
    options: dict[str, Any] = {"http_port": 0, "topics": TopicSettings(partitions=partitions)}
    return EchoSettings(
        kafka=kafka,
        input_topic=source,
        output_topic=source + ".out",
        group_id=source + ".group",
        **(options | overrides),
    )
