"""Least-privilege Kafka ACLs per service, derived from the settings the service runs with.

A service principal (`User:<service>`) may read the topics it consumes and its consumer group,
read the compacted topics it loads outside the group, write its outputs and the dead-letter topic
of each consumed input, and, with exactly-once delivery, use its transactional id. Nothing else:
no `Create` (an operator creates topics as the admin, so services run with `CREATE_TOPICS=false`),
no cluster-wide `IdempotentWrite` (since Kafka 3.0, KIP-679, `Write` on a topic is enough for an
idempotent producer), no wildcard topics.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from shopstream.settings import ServiceSettings
from shopstream.topics import TopicSettings, dead_letter_topic


class ResourceType(IntEnum):
    """Kafka's wire codes (org.apache.kafka.common.resource.ResourceType)."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class Operation(IntEnum):
    """Kafka's wire codes (org.apache.kafka.common.acl.AclOperation)."""

    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    IDEMPOTENT_WRITE = 12


class PatternType(IntEnum):
    LITERAL = 3
    PREFIXED = 4


ALLOW = 3  # AclPermissionType.ALLOW; this module never writes DENY rules


@dataclass(frozen=True, order=True)
class AclBinding:
    principal: str
    resource_type: ResourceType
    resource_name: str
    operation: Operation
    pattern: PatternType = PatternType.LITERAL
    host: str = "*"

    def __str__(self) -> str:
        pattern = "" if self.pattern is PatternType.LITERAL else f" ({self.pattern.name.lower()})"
        return (
            f"ALLOW {self.principal} {self.operation.name} "
            f"{self.resource_type.name} {self.resource_name}{pattern}"
        )


@dataclass(frozen=True)
class TopicUse:
    consumes: tuple[str, ...]
    """Read in the consumer group; each also gets a dead-letter topic to write."""
    produces: tuple[str, ...]
    loads: tuple[str, ...] = ()
    """Read in full outside the group (compacted reference data, the service's own state)."""


@dataclass(frozen=True)
class ServiceAccess:
    service: str
    principal: str
    topics: TopicUse
    group_id: str
    transactional_id: str | None
    """None without exactly-once delivery."""
    transactional_prefix: bool = False
    """The id is a prefix: the runtime appends each replica's hostname."""


def _sentiment(topics: TopicSettings) -> TopicUse:
    # Rebuilds its rolling insight windows from its own compacted output on start.
    return TopicUse((topics.reviews,), (topics.sentiment, topics.insights), (topics.insights,))


def _describer(topics: TopicSettings) -> TopicUse:
    # Reads its own descriptions on start to skip products whose text did not change.
    return TopicUse(
        (topics.products, topics.copy_requests),
        (topics.descriptions, topics.copies),
        (topics.products, topics.descriptions),
    )


def _responder(topics: TopicSettings, *, product_facts: bool = True) -> TopicUse:
    loads = (topics.knowledge, topics.products) if product_facts else (topics.knowledge,)
    return TopicUse((topics.questions,), (topics.answers, topics.knowledge_gaps), loads)


def _recommender(topics: TopicSettings) -> TopicUse:
    return TopicUse(
        (topics.activity, topics.recs_requests), (topics.recs_results,), (topics.products,)
    )


TOPIC_USE: dict[str, Callable[[TopicSettings], TopicUse]] = {
    "sentiment": _sentiment,
    "describer": _describer,
    "responder": _responder,
    "recommender": _recommender,
}
"""What each model service reads and writes, in terms of the shared topic registry; kept next to
the ACLs so a reviewer sees a new topic in a service also needs a grant here."""

SETTINGS_CLASSES = {
    "sentiment": "shopstream_sentiment.config:SentimentSettings",
    "describer": "shopstream_describer.config:DescriberSettings",
    "responder": "shopstream_responder.config:ResponderSettings",
    "recommender": "shopstream_recommender.config:RecommenderSettings",
    "echo": "shopstream.echo:EchoSettings",
}
SERVICES = tuple(SETTINGS_CLASSES)


def load_settings(service: str) -> ServiceSettings:
    """The service's settings from its own environment (`SENTIMENT_...`), as it would read them."""
    module_name, class_name = SETTINGS_CLASSES[service].split(":")
    settings_class = getattr(importlib.import_module(module_name), class_name)
    settings: ServiceSettings = settings_class()
    return settings


def topic_use(service: str, settings: ServiceSettings) -> TopicUse:
    if service == "echo":
        # The echo service names its two topics directly rather than through the registry.
        source, target = getattr(settings, "input_topic"), getattr(settings, "output_topic")  # noqa: B009
        return TopicUse((source,), (target,))
    if service == "responder":
        # Product facts in answers are optional; without them the catalogue is not read.
        return _responder(settings.topics, product_facts=getattr(settings, "product_facts", True))
    return TOPIC_USE[service](settings.topics)


def service_access(
    service: str, settings: ServiceSettings, principal: str | None = None
) -> ServiceAccess:
    """Resolve names the way the runtime does: group `shopstream-<service>` unless configured,
    transactional id `<group>-<hostname>` (hence a prefix) unless configured."""
    username = principal or settings.kafka.sasl_username or service
    group_id = settings.group_id or f"shopstream-{service}"
    transactional_id = None
    if settings.batch.delivery == "exactly_once":
        transactional_id = settings.batch.transactional_id or f"{group_id}-"
    return ServiceAccess(
        transactional_prefix=transactional_id is not None and not settings.batch.transactional_id,
        service=service,
        principal=username if username.startswith("User:") else f"User:{username}",
        topics=topic_use(service, settings),
        group_id=group_id,
        transactional_id=transactional_id,
    )


def acl_bindings(access: ServiceAccess) -> list[AclBinding]:
    """The ACLs `access` needs and nothing more, sorted and without duplicates.

    `Read` and `Write` imply `Describe` on the same resource, so no separate `Describe` rules.
    """
    principal, topics = access.principal, access.topics
    bindings = {AclBinding(principal, ResourceType.GROUP, access.group_id, Operation.READ)}
    for topic in (*topics.consumes, *topics.loads):
        bindings.add(AclBinding(principal, ResourceType.TOPIC, topic, Operation.READ))
    for topic in (*topics.produces, *(dead_letter_topic(name) for name in topics.consumes)):
        bindings.add(AclBinding(principal, ResourceType.TOPIC, topic, Operation.WRITE))
    if access.transactional_id is not None:
        prefixed = access.transactional_prefix
        bindings.add(
            AclBinding(
                principal,
                ResourceType.TRANSACTIONAL_ID,
                access.transactional_id,
                Operation.WRITE,
                PatternType.PREFIXED if prefixed else PatternType.LITERAL,
            )
        )
    return sorted(bindings)
