"""Least-privilege Kafka ACLs per service, derived from its spec and the settings it runs with.

A service principal (`User:<service>`) may read the topics it consumes and its consumer group,
read the compacted topics it loads outside the group, write its outputs and the dead-letter topic
of each consumed input, and, with exactly-once delivery, use its transactional id. Nothing else:
no `Create` (an operator creates topics as the admin, so services run with `CREATE_TOPICS=false`),
no cluster-wide `IdempotentWrite` (since Kafka 3.0, KIP-679, `Write` on a topic is enough for an
idempotent producer), no wildcard topics.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from shopstream.services import TopicUse, service_spec
from shopstream.settings import ServiceSettings
from shopstream.topics import dead_letter_topic


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
class ServiceAccess:
    service: str
    principal: str
    topics: TopicUse
    group_id: str
    transactional_id: str | None
    """None without exactly-once delivery."""
    transactional_prefix: bool = False
    """The id is a prefix: the runtime appends each replica's hostname."""


def load_settings(service: str) -> ServiceSettings:
    """The service's settings from its own environment (`SENTIMENT_...`), as it would read them."""
    return service_spec(service).load_settings()


def topic_use(service: str, settings: ServiceSettings) -> TopicUse:
    """What the service reads and writes with these settings, as its spec declares."""
    return service_spec(service).topic_use(settings)


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
