"""Small helpers for tests that talk to a real broker."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shopstream.kafka_io import read_topic
from shopstream.runtime.security import aiokafka_options
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


def prefixed_topics(prefix: str, *names: str, partitions: int = 1) -> TopicSettings:
    """The registry with each named topic renamed `<prefix>.<name>`."""
    return TopicSettings(partitions=partitions, **{name: f"{prefix}.{name}" for name in names})


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


async def records_to_end(kafka: KafkaSettings, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` up to its end offsets as of now, in partition and offset order.

    Stops at the end offsets instead of waiting for the topic to go idle, so a test reads what
    has been published without paying an idle timeout."""
    admin = AIOKafkaAdminClient(**aiokafka_options(kafka))
    await admin.start()
    try:
        (description,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = sorted(
        TopicPartition(topic, partition["partition"]) for partition in description["partitions"]
    )
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(**aiokafka_options(kafka), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        for partition in partitions:
            while await consumer.position(partition) < ends[partition]:
                fetched = await consumer.getmany(partition, timeout_ms=1_000)
                records += fetched.get(partition, [])
        return records
    finally:
        await consumer.stop()


async def committed_offsets(kafka: KafkaSettings, group: str, topic: str) -> dict[int, int]:
    """The consumer group's committed next offset per partition of `topic` (absent: none)."""
    admin = AIOKafkaAdminClient(**aiokafka_options(kafka))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
