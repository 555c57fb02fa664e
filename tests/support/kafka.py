"""Small helpers for tests that talk to a real broker."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from shopstream.kafka_io import read_topic
from shopstream.settings import KafkaSettings


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


async def collect(
    kafka: KafkaSettings,
    topic: str,
    expected: int,
    within: float = 60.0,
    *,
    read_committed: bool = False,
    tombstones: bool = False,
) -> list[dict[str, Any]]:
    """Read `topic` from the beginning until `expected` records arrived or `within` s passed.

    Tombstones (null values) are skipped, or with `tombstones` kept as `{"_tombstone": key}`."""
    documents: list[dict[str, Any]] = []
    async for _key, value, headers in read_topic(
        kafka,
        topic,
        idle_timeout=within,
        deadline=time.monotonic() + within,
        read_committed=read_committed,
    ):
        if not value:  # read_topic yields a tombstone's null value as b""
            if tombstones:
                documents.append({"_tombstone": (_key or b"").decode()})
            continue
        document = json.loads(value)
        document["_headers"] = {name: raw.decode() for name, raw in headers}
        documents.append(document)
        if len(documents) >= expected:
            break
    return documents
