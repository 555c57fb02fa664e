"""Create the topic registry's topics on a cluster, idempotently."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shopstream.runtime.security import aiokafka_options
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSpec

logger = logging.getLogger("shopstream.admin")


async def ensure_topics(settings: KafkaSettings, specs: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(**aiokafka_options(settings), client_id="shopstream-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=spec.replication_factor,
                        topic_configs=spec.config(),
                    )
                    for spec in missing
                ]
            )
            _raise_for_topic_errors(response)
            logger.info("created topics", extra={"topics": [spec.name for spec in missing]})
        return [spec.name for spec in missing]
    finally:
        await admin.close()


TOPIC_ALREADY_EXISTS = 36
"""Another replica created it between our listing and our request: fine."""
TOPIC_AUTHORIZATION_FAILED = 29
"""Under ACLs a service sees (and may create) only its own topics; the others in the registry
are someone else's to create, so being refused them is not an error of this service."""


def _raise_for_topic_errors(response: object) -> None:
    # aiokafka returns per-topic errors in the response instead of raising them; each entry is
    # (topic, error code[, error message, ...]) depending on the protocol version.
    entries = list(getattr(response, "topic_errors", ()))
    refused = [entry[0] for entry in entries if entry[1] == TOPIC_AUTHORIZATION_FAILED]
    if refused:
        logger.warning("not allowed to create topics; leaving them", extra={"topics": refused})
    errors = [
        " ".join(str(part) for part in entry[:3] if part is not None)
        for entry in entries
        if entry[1] not in (0, TOPIC_ALREADY_EXISTS, TOPIC_AUTHORIZATION_FAILED)
    ]
    if errors:
        raise RuntimeError("could not create topics: " + "; ".join(errors))
