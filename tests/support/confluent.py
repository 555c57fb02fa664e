"""A `ConfluentConsumer` around a stand-in librdkafka client, for unit tests without a broker."""

from __future__ import annotations

from typing import Any

from shopstream.echo import EchoSettings
from shopstream.runtime.client_thread import ClientThread
from shopstream.runtime.confluent_consumer import ConfluentConsumer
from shopstream.settings import BatchSettings


def consumer_around(
    client: Any,  # any stand-in for librdkafka's consumer
    *,
    thread_name: str = "consumer",
    max_poll_interval_ms: int = 300_000,
) -> ConfluentConsumer:
    """What `ConfluentConsumer.start` sets up, with `client` instead of librdkafka's consumer."""
    consumer = ConfluentConsumer(
        EchoSettings(batch=BatchSettings(max_poll_interval_ms=max_poll_interval_ms)),
        client_id="c",
        group_id="g",
        topics=["t"],
        isolation_level="read_uncommitted",
        max_poll_interval_ms=max_poll_interval_ms,
        on_assign=lambda consumer, partitions: None,
        on_revoke=lambda consumer, partitions: None,
    )
    consumer._client = client
    consumer._thread = ClientThread(thread_name)
    consumer._running = True
    return consumer
