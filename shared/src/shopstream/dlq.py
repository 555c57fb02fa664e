"""Dead-letter topics: read them, and replay their records to where they came from."""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from shopstream.events import DeadLetter
from shopstream.runtime.dead_letters import REPLAY_HEADER
from shopstream.runtime.security import aiokafka_options
from shopstream.settings import KafkaSettings

REPLAY_GROUP = "shopstream-dlq-replay"


@dataclass
class ReplayReport:
    replayed: int = 0
    skipped_exhausted: int = 0
    """Letters that already went round `max_replays` times: left for a human."""
    skipped_filtered: int = 0
    unreadable: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)


def parse_letter(value: bytes | None) -> DeadLetter | None:
    try:
        return DeadLetter.model_validate_json(value or b"")
    except ValidationError:
        return None


def replay_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    headers = [
        (name, value.encode("utf-8"))
        for name, value in letter.payload.original_headers.items()
        if name != REPLAY_HEADER
    ]
    headers.append((REPLAY_HEADER, str(letter.payload.replays + 1).encode("ascii")))
    return headers


async def replay(
    settings: KafkaSettings,
    dlq_topic: str,
    *,
    rate: float = 100.0,
    max_replays: int = 3,
    reason: str | None = None,
    idle_seconds: float = 3.0,
    on_progress: Callable[[ReplayReport], None] | None = None,
) -> ReplayReport:
    """Send dead letters back to their original topic at most `rate` per second.

    Progress is committed in the `shopstream-dlq-replay` group, so a second run does not send
    the same letters again; each replayed record carries a replay count that its next dead
    letter keeps, and letters at `max_replays` are skipped so a record that keeps failing
    cannot loop forever.
    """
    options = aiokafka_options(settings)
    consumer = AIOKafkaConsumer(
        dlq_topic,
        **options,
        group_id=REPLAY_GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    report = ReplayReport()
    interval = 1.0 / rate
    try:
        # The idle clock starts once the group has assigned the partitions, not before.
        joined_by = time.monotonic() + 60
        while not consumer.assignment() and time.monotonic() < joined_by:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        last_record = time.monotonic()
        while time.monotonic() - last_record < idle_seconds:
            batches = await consumer.getmany(timeout_ms=200, max_records=100)
            for records in batches.values():
                last_record = time.monotonic()
                for record in records:
                    await _replay_one(producer, record.value, reason, max_replays, report)
                    await asyncio.sleep(interval)
            if batches:
                await producer.flush()
                await consumer.commit()
                if on_progress is not None:
                    on_progress(report)
    finally:
        await producer.stop()
        await consumer.stop()
    return report


async def _replay_one(
    producer: AIOKafkaProducer,
    value: bytes | None,
    reason: str | None,
    max_replays: int,
    report: ReplayReport,
) -> None:
    letter = parse_letter(value)
    if letter is None:
        report.unreadable += 1
        return
    if reason is not None and letter.payload.reason != reason:
        report.skipped_filtered += 1
        return
    if letter.payload.replays >= max_replays:
        report.skipped_exhausted += 1
        return
    key = letter.payload.original_key_b64
    await producer.send_and_wait(
        letter.payload.original_topic,
        base64.b64decode(letter.payload.original_value_b64),
        key=base64.b64decode(key) if key is not None else None,
        headers=replay_headers(letter),
    )
    report.replayed += 1
    report.by_topic[letter.payload.original_topic] += 1
