"""One Kafka record as the runtime sees it, independent of the client that fetched it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class ConsumerRecordLike(Protocol):
    """The fields the runtime reads from aiokafka's (or FastStream's test) consumer records."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    tombstone: bool = False
    """A null value: how a compacted topic forgets a key. Not an event and not an error: the
    runtime skips it (a deletion is signalled by its own event, e.g. `product.deleted`)."""

    @classmethod
    def of(cls, raw: ConsumerRecordLike) -> Record:
        return cls(
            topic=raw.topic,
            partition=raw.partition,
            offset=raw.offset,
            key=raw.key,
            value=raw.value or b"",
            headers=tuple(raw.headers or ()),
            tombstone=raw.value is None,
        )
