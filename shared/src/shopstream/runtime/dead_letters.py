"""Build the dead-letter event for a record a service could not process."""

from __future__ import annotations

import base64
import re

from shopstream.events import DeadLetter, DeadLetterPayload, Producer, utc_now
from shopstream.runtime.codec import DecodeFailure
from shopstream.runtime.records import Record

REPLAY_HEADER = "shopstream-replays"
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def dead_letter_for(record: Record, failure: DecodeFailure, producer: Producer) -> DeadLetter:
    now = utc_now()
    headers = {name[:128]: _header_text(value) for name, value in record.headers[:100] if name}
    tenant = headers.get("tenant_id", "")
    return DeadLetter(
        tenant_id=tenant if _TENANT.match(tenant) else "unknown",
        producer=producer,
        payload=DeadLetterPayload(
            original_topic=record.topic,
            original_partition=record.partition,
            original_offset=record.offset,
            original_key_b64=_b64(record.key) if record.key is not None else None,
            original_value_b64=_b64(record.value),
            original_headers=headers,
            reason=failure.reason.value,
            error_class=failure.error_class[:512],
            error_message=failure.message[:4_000],
            service=producer.name,
            first_failed_at=now,
            last_failed_at=now,
            attempts=1,
            replays=_replays(record),
        ),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _header_text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", errors="replace")[:4_000]


def _replays(record: Record) -> int:
    for name, value in record.headers:
        if name == REPLAY_HEADER:
            try:
                return int(value or b"")
            except ValueError:
                return 0
    return 0
