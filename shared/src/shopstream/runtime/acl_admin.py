"""Create ACLs on a cluster through Kafka's CreateAcls API.

aiokafka ships the protocol structures but no admin method for them, so this module builds the
request itself (CreateAcls v1: the oldest version Kafka 4 still accepts, and it carries the
pattern type needed for prefixed transactional ids). Creating an ACL that exists is a no-op on the
broker, so applying the same list twice is safe.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest_v1
from aiokafka.protocol.api import Request

from shopstream.acls import ALLOW, AclBinding
from shopstream.runtime.security import aiokafka_options
from shopstream.settings import KafkaSettings


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # untyped aiokafka
    API_KEY = 30

    def __init__(self, bindings: Sequence[AclBinding]) -> None:
        self._creations = [
            (
                int(binding.resource_type),
                binding.resource_name,
                int(binding.pattern),
                binding.principal,
                binding.host,
                int(binding.operation),
                ALLOW,
            )
            for binding in bindings
        ]

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self._creations)


class AclError(RuntimeError):
    pass


async def create_acls(settings: KafkaSettings, bindings: Sequence[AclBinding]) -> None:
    """Create every binding (as a principal allowed to alter ACLs, e.g. a super user)."""
    if not bindings:
        return
    client = AIOKafkaClient(**aiokafka_options(settings), client_id="shopstream-acls")
    await client.bootstrap()
    try:
        response = await client.send(client.get_random_node(), _CreateAcls(bindings))
    finally:
        await client.close()
    failures = [
        f"{binding}: {for_code(code).__name__} {message or ''}".strip()
        for binding, (code, message) in zip(bindings, response.creation_responses, strict=True)
        if code != 0
    ]
    if failures:
        raise AclError("the broker refused ACLs:\n" + "\n".join(failures))
