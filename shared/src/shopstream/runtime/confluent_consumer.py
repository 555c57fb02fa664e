"""The service's consumer group member on confluent-kafka (librdkafka), without FastStream.

One loop fetches a batch with `consume` and hands it to the runtime; nothing else runs per
batch. FastStream's subscriber did the same with a parser, middlewares and dependency
injection around each batch, which cost about 1.8 ms per batch of 500 on the bus bench (a
tenth of the echo service's time); the runtime reads none of what they produced.

Every call on the librdkafka consumer runs on one thread of its own, as librdkafka wants: its
rebalance callbacks come inside `consume` on that thread, that is between two batches, so a
revocation never waits for a batch in flight. Commits and seeks are queued on the same thread
(`submit`); one waiting behind a `consume` waits at most its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as ConfluentPartition

from shopstream.runtime.batch import FatalServiceError
from shopstream.runtime.client_thread import ClientThread, finish_within
from shopstream.runtime.records import Record
from shopstream.runtime.security import librdkafka_options
from shopstream.settings import ServiceSettings

__all__ = ["BatchRewind", "ConfluentConsumer", "record_of"]

_T = TypeVar("_T")
BatchCallback = Callable[[list[Record], "BatchRewind"], Awaitable[None]]
RebalanceCallback = Callable[[Any, list[ConfluentPartition]], None]
_FETCH_RETRY_SECONDS = 1.0
_IDLE_WAIT_SECONDS = 0.25
"""How long an idle consumer waits for its first record before it polls again. Polling every
batch timeout (5 ms) while nothing arrives cost 6 % of a core per idle replica; this costs
under 1 %. A commit or seek queued behind the wait, and a stop, wait at most this long."""
_librdkafka_logger = logging.getLogger("shopstream.librdkafka")
logger = logging.getLogger("shopstream.confluent")


def record_of(message: Message) -> Record:
    """A consumed record as the runtime sees it; headers stay as librdkafka gave them (bytes or
    None), since only a dead letter reads them."""
    value = message.value()
    # Consumed headers are a list of (name, bytes or None); the stub names produce's forms too.
    headers = cast("list[tuple[str, bytes | None]] | None", message.headers())
    return Record(
        message.topic() or "",
        message.partition() or 0,
        message.offset() or 0,
        message.key(),
        value or b"",
        tuple(headers) if headers else (),
        value is None,
    )


def _records(messages: Sequence[Message]) -> list[Record]:
    """The batch's records; errors librdkafka delivers in the batch are logged and skipped
    (they carry no record: a partition's fetch failed and is retried by librdkafka)."""
    records: list[Record] = []
    for message in messages:
        error = message.error()
        if error is None:
            records.append(record_of(message))
        elif error.code() != KafkaError._PARTITION_EOF:
            logger.warning("fetch error", extra={"error": str(error)})
    return records


class BatchRewind:
    """Rewinds a batch's partitions to its earliest records, so they are fetched again (the
    runtime's `Rewindable`). A partition revoked since cannot be sought; its next owner
    starts from the group's committed offset, which is never past an unfinished record."""

    __slots__ = ("_consumer", "_records", "rewound")

    def __init__(self, consumer: ConfluentConsumer, records: Sequence[Record]) -> None:
        self._consumer = consumer
        self._records = records
        self.rewound = False

    async def nack(self) -> None:
        self.rewound = True
        earliest: dict[tuple[str, int], int] = {}
        for record in self._records:
            slot = (record.topic, record.partition)
            earliest[slot] = min(record.offset, earliest.get(slot, record.offset))
        client = self._consumer.client

        def seek_all() -> None:
            for (topic, partition), offset in earliest.items():
                with contextlib.suppress(KafkaException):
                    client.seek(ConfluentPartition(topic, partition, offset))

        await asyncio.wrap_future(self._consumer.submit(seek_all))


class ConfluentConsumer:
    """A consumer group member: subscribes, fetches batches until stopped, then leaves the
    group (its revocation callback commits what the runtime hands over)."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        client_id: str,
        group_id: str,
        topics: Sequence[str],
        isolation_level: str,
        max_poll_interval_ms: int,
        on_assign: RebalanceCallback,
        on_revoke: RebalanceCallback,
    ) -> None:
        batch = settings.batch
        self._topics = list(topics)
        self._max_records = batch.max_records
        self._timeout_seconds = batch.batch_timeout_ms / 1000
        self._stop_waits_seconds = batch.max_poll_interval_ms / 1000
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._config: dict[str, Any] = {
            **librdkafka_options(settings.kafka),
            "client.id": client_id,
            "group.id": group_id,
            # Offsets are committed by the runtime, only once a batch's results are durable.
            "enable.auto.commit": False,
            "auto.offset.reset": batch.auto_offset_reset,
            "isolation.level": isolation_level,
            "session.timeout.ms": batch.session_timeout_ms,
            "heartbeat.interval.ms": batch.heartbeat_interval_ms,
            "max.poll.interval.ms": max_poll_interval_ms,
            # As FastStream configured it before: round-robin spreads several input topics'
            # partitions evenly, and new topics and partitions are seen within a second.
            "partition.assignment.strategy": "roundrobin",
            "topic.metadata.refresh.interval.ms": 1000,
            # Topics are created by the service (`create_topics`) or by operations, never by a
            # subscription.
            "allow.auto.create.topics": False,
        }
        self._client: Consumer | None = None
        self._thread: ClientThread | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._running = False

    @property
    def client(self) -> Consumer:
        """The librdkafka consumer; call it only through `submit` (or inside its callbacks)."""
        if self._client is None:
            raise RuntimeError("the consumer is not running")
        return self._client

    @property
    def running(self) -> bool:
        return self._running

    def submit(self, call: Callable[[], _T]) -> Future[_T]:
        """Run `call` on the consumer's thread, after whatever runs there now."""
        if self._thread is None:
            raise RuntimeError("the consumer is not running")
        return self._thread.submit(call)

    async def start(self, handle: BatchCallback) -> None:
        self._thread = ClientThread("kafka-consumer")
        self._client = Consumer(self._config, logger=_librdkafka_logger)
        client = self._client
        await asyncio.wrap_future(
            self.submit(
                lambda: client.subscribe(
                    self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke
                )
            )
        )
        self._running = True
        self._loop_task = asyncio.create_task(self._fetch_and_handle(handle))

    async def _fetch_and_handle(self, handle: BatchCallback) -> None:
        client = self.client

        def fetch() -> list[Record]:
            return _records(client.consume(self._max_records, self._timeout_seconds))

        def fetch_when_idle() -> list[Record]:
            # `consume` waits for a *full* batch until its timeout. After an empty poll, wait
            # for the first record alone (it returns as soon as one is there), then fill the
            # batch as `fetch` does: what arrives within the batch timeout.
            first = client.consume(1, _IDLE_WAIT_SECONDS)
            if not first or self._max_records == 1:
                return _records(first)
            return _records([*first, *client.consume(self._max_records - 1, self._timeout_seconds)])

        idle = False
        while self._running:
            try:
                records = await asyncio.wrap_future(self.submit(fetch_when_idle if idle else fetch))
            except Exception:
                # A fatal client error (e.g. authorisation): log it, wait, and try again, as
                # FastStream's subscriber did; readiness reports the broker separately.
                logger.exception("fetching a batch failed")
                await asyncio.sleep(_FETCH_RETRY_SECONDS)
                continue
            idle = not records
            if idle:
                continue
            started = time.perf_counter()
            rewind = BatchRewind(self, records)
            try:
                await handle(records, rewind)
            except Exception as error:
                # Fetched again: the delivery rewound the batch before raising, or, if it failed
                # before its results were queued, it is rewound here (left alone, the next
                # batch's commit would move the group past it). Never twice: at least once, a
                # failed acknowledgement rewinds this batch and then the one before it, and
                # seeking this one again would skip the earlier one's records.
                if not rewind.rewound:
                    await rewind.nack()
                if isinstance(error, FatalServiceError):
                    # The service stops (see `BatchService`): nothing more is fetched, and the
                    # batch is left uncommitted for the partition's next owner.
                    self._running = False
                    return
                logger.exception("a batch failed and will be redone")
                continue
            # One line per batch, as FastStream's subscriber logs them on aiokafka.
            logger.info(
                "batch handled",
                extra={
                    "records": len(records),
                    "seconds": round(time.perf_counter() - started, 3),
                },
            )

    async def stop(self) -> None:
        """Finish the batch in flight (up to the poll interval), then leave the group."""
        self._running = False
        task, self._loop_task = self._loop_task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, self._stop_waits_seconds)
            except TimeoutError:
                logger.warning("the batch in flight outlasted the stop; it will be redone")
        client, self._client = self._client, None
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if client is not None:
            # On the consumer's thread: the close runs the revocation callback there, which
            # waits for this event loop (it is free: this coroutine waits for the thread). A
            # close stuck on the cluster is left there, as a batch that outlasts the stop is.
            await finish_within(
                thread.submit(client.close), self._stop_waits_seconds, what="consumer close"
            )
        thread.shutdown()
