"""Dead letters: a record a service could not process, kept whole with the reason."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shopstream.events.envelope import (
    Event,
    Label,
    Name,
    Paragraph,
    StrictModel,
    TenantId,
    UtcTimestamp,
)


class DeadLetterPayload(StrictModel):
    original_topic: Name
    original_partition: int = Field(ge=0)
    original_offset: int = Field(ge=0)
    original_key_b64: str | None = Field(default=None, max_length=1_000_000)
    original_value_b64: str = Field(max_length=2_000_000)
    original_headers: dict[Label, Paragraph] = Field(default_factory=dict, max_length=100)
    reason: Label
    """Machine-readable class: invalid_utf8, invalid_json, schema_violation, oversized, ..."""
    error_class: Name
    error_message: Paragraph
    service: Label
    first_failed_at: UtcTimestamp
    last_failed_at: UtcTimestamp
    attempts: int = Field(ge=1)
    replays: int = Field(default=0, ge=0)
    """How often the record was replayed from the DLQ; replay refuses to loop past a limit."""


class DeadLetter(Event):
    event_type: Literal["dead.letter"] = "dead.letter"
    tenant_id: TenantId = "unknown"
    """The original record's tenant when it could be read, else `unknown`."""
    payload: DeadLetterPayload

    def message_key(self) -> str:
        # Dead letters are published under the original record's key bytes; this is the fallback.
        return f"{self.tenant_id}:{self.payload.original_topic}"
