"""The runtime on confluent-kafka (librdkafka): same guarantees, the protocol work done in C.

`KAFKA__CLIENT=confluent` swaps three things and nothing else in a service:
- the consumer is the runtime's own loop (`runtime/confluent_consumer.py`: one `consume` call per
  batch on the consumer's thread), with rebalance callbacks bridged to the runtime's
  `PartitionTracker`;
- results go through a librdkafka producer: idempotent, `acks=all`, keys partitioned with
  murmur2 like the Java client and aiokafka, so a key lands on the partition it always did;
- exactly-once writes a batch's results and its next offsets in one librdkafka transaction.

librdkafka calls rebalance callbacks only inside `consume`, that is between two batches: a
revocation never waits for a batch in flight, and the offsets it commits are all published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import TopicPartition
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as ConfluentPartition

from shopstream.runtime.batch import Publication
from shopstream.runtime.client_thread import run_detached
from shopstream.runtime.codec import EncodedHeaders
from shopstream.runtime.confluent_consumer import ConfluentConsumer
from shopstream.runtime.delivery import IsolationLevel, Rewindable
from shopstream.runtime.partitions import CommitOffsets, PartitionTracker
from shopstream.runtime.records import Record, next_offsets
from shopstream.runtime.security import librdkafka_options
from shopstream.settings import ServiceSettings

__all__ = [
    "ConfluentAtLeastOnce",
    "ConfluentExactlyOnce",
    "RebalanceBridge",
    "confluent_delivery_for",
]

_T = TypeVar("_T")
_POLL_WHEN_FULL_SECONDS = 0.05
_librdkafka_logger = logging.getLogger("shopstream.librdkafka")
logger = logging.getLogger("shopstream.confluent")


def _aiokafka_partitions(partitions: Sequence[ConfluentPartition]) -> set[TopicPartition]:
    return {TopicPartition(partition.topic, partition.partition) for partition in partitions}


class RebalanceBridge:
    """librdkafka's rebalance callbacks, run on the consumer's thread inside `consume`, handed to
    the tracker on the service's event loop. The consumer thread waits for the tracker (state
    catch-up, offsets of revoked partitions), as aiokafka's rebalance listener makes it wait; the
    revoked partitions' offsets are then committed on that same thread, as librdkafka requires
    while it closes or rebalances."""

    def __init__(self, tracker: PartitionTracker, delivery: _ConfluentDelivery) -> None:
        self._tracker = tracker
        self._delivery = delivery
        self.loop: asyncio.AbstractEventLoop | None = None
        """Set by the service when it starts, before the consumer can call back."""

    def on_assign(self, consumer: Any, partitions: list[ConfluentPartition]) -> None:  # noqa: ANN401 - untyped client
        self._wait(self._tracker.on_partitions_assigned(_aiokafka_partitions(partitions)))
        # What the tracker counts as processed is committed only once it is acknowledged.
        if self._wait(self._delivery.settle()):
            self._delivery.commit_assigned(consumer, partitions, self._tracker.processed)

    def on_revoke(self, consumer: Any, partitions: list[ConfluentPartition]) -> None:  # noqa: ANN401 - untyped client
        self._wait(self._tracker.on_partitions_revoked(_aiokafka_partitions(partitions)))
        # The last batch's offsets (or transaction) are in before the partitions move on.
        self._wait(self._delivery.settle())
        self._delivery.commit_revoked(consumer)

    def _wait(self, step: Coroutine[Any, Any, _T]) -> _T:
        if self.loop is None:
            step.close()
            raise RuntimeError("a rebalance callback came before the service started")
        return asyncio.run_coroutine_threadsafe(step, self.loop).result()


@dataclass(frozen=True, slots=True)
class _Unacknowledged:
    """A batch whose results are queued in librdkafka and whose offsets are not yet committed."""

    acknowledged: asyncio.Task[None]
    """Finishes the batch: waits for the broker's acknowledgements and commits its offsets."""
    message: Rewindable
    """The batch's rewind: `nack` seeks its partitions back if the results failed."""


class _ConfluentDelivery:
    """A librdkafka producer both guarantees publish through; each guarantee decides when a
    batch's results and offsets are durable (`publish`) and what a rebalance waits for
    (`settle`)."""

    isolation_level: IsolationLevel

    def __init__(self, settings: ServiceSettings, *, client_id: str, group_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._group_id = group_id
        self._producer: Producer | None = None
        self._headers = EncodedHeaders()
        self._failures: list[KafkaError] = []
        self._consumer: ConfluentConsumer | None = None

    def _config(self) -> dict[str, Any]:
        batch = self._settings.batch
        return {
            **librdkafka_options(self._settings.kafka),
            "client.id": self._client_id,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": batch.producer_linger_ms("confluent"),
            # murmur2 for keyed records, as the Java client and aiokafka partition them.
            "partitioner": "murmur2_random",
            # Only failed deliveries call back into Python: a callback per acknowledged record
            # took the GIL once per event while `flush` waited.
            "on_delivery": self._on_delivery,
            "delivery.report.only.error": True,
        }

    def attach(self, consumer: ConfluentConsumer) -> CommitOffsets | None:
        """Called once with the service's consumer; returns how offsets of revoked partitions
        are committed on the way out (None: not needed)."""
        self._consumer = consumer
        return None

    def commit_revoked(self, consumer: Any) -> None:  # noqa: ANN401 - confluent's Consumer
        """On the consumer's thread, in a revocation: commit what the tracker handed over."""
        return

    def commit_assigned(
        self,
        consumer: Any,  # noqa: ANN401 - confluent's Consumer
        partitions: list[ConfluentPartition],
        processed: dict[TopicPartition, int],
    ) -> None:
        """On the consumer's thread, in an assignment: catch the group's offsets up with what
        this replica published but could not commit."""
        return

    async def settle(self) -> bool:
        """Make what was published durable; False if that failed. Rebalances and stop wait
        for this before partitions move."""
        raise NotImplementedError

    async def _abandon(self) -> None:
        """After a batch failed, before it is rewound."""
        self._failures = []

    async def start(self) -> None:
        # librdkafka's own log lines go through the service's logging, not straight to stderr.
        self._producer = Producer(self._config(), logger=_librdkafka_logger)

    async def stop(self) -> None:
        if not await self.settle():
            await self._abandon()
        producer, self._producer = self._producer, None
        if producer is None:
            return
        timeout = self._timeout_seconds()

        def close() -> None:
            producer.flush(timeout)
            # What the flush could not deliver is given up now, as dropping the handle did,
            # rather than by a close that waits for each message's own timeout.
            producer.purge()
            producer.close()

        # Off the event loop, and waited for at most twice the transaction timeout. Dropped on
        # the loop instead, the handle is destroyed there, in C, where a destroy stuck on a
        # broker thread would freeze the whole process, signal handlers included.
        await run_detached(close, 2 * timeout, what="producer close")

    async def ping(self, *, timeout_seconds: float) -> bool:
        """Whether the cluster answers a metadata request right now (readiness)."""
        producer = self._producer
        if producer is None:
            return False
        try:
            await asyncio.to_thread(producer.list_topics, timeout=timeout_seconds)
        except (KafkaException, RuntimeError):
            # RuntimeError: closed by a stop meanwhile.
            return False
        return True

    def _timeout_seconds(self) -> float:
        return self._settings.batch.transaction_timeout_ms / 1000

    def _started(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("the delivery is used before the service started it")
        return self._producer

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(error)

    def _produce(self, publications: Sequence[Publication]) -> None:
        producer = self._started()
        headers = self._headers
        for publication in publications:
            event = publication.event
            key = publication.key_bytes()
            value = None if event is None else event.to_json()
            # librdkafka takes any header list; its stub names a narrower type.
            encoded: Any = None if event is None else headers(event)
            while True:
                try:
                    producer.produce(
                        publication.topic,
                        value=value,
                        key=key,
                        headers=encoded,
                    )
                    break
                except BufferError:
                    # The local queue is full: serve acknowledgements until there is room.
                    producer.poll(_POLL_WHEN_FULL_SECONDS)

    def _raise_failures(self) -> None:
        failures, self._failures = self._failures, []
        if failures:
            raise KafkaException(failures[0])

    def _attached(self) -> ConfluentConsumer:
        if self._consumer is None:
            raise RuntimeError("the delivery has no consumer attached")
        return self._consumer


class ConfluentAtLeastOnce(_ConfluentDelivery):
    """Results first, offsets after: a batch's offsets are committed only once the broker has
    acknowledged every one of its results. Revocations and assignments wait for the last batch
    (`settle`) before they commit what the tracker counts as processed.

    `publish` returns as soon as a batch's results are queued; a task then waits for the
    acknowledgements and commits the offsets while the next batch is fetched, decoded and
    handled. The next `publish` waits for that task before it queues anything, and if the
    batch failed to finish, rewinds both batches and raises, so both are redone.
    """

    isolation_level: IsolationLevel = "read_uncommitted"

    def __init__(self, settings: ServiceSettings, *, client_id: str, group_id: str) -> None:
        super().__init__(settings, client_id=client_id, group_id=group_id)
        self._revoked: list[ConfluentPartition] = []
        self._unacknowledged: _Unacknowledged | None = None

    async def settle(self) -> bool:
        """Wait until the last batch published is finished; False if it failed (the next
        `publish` then rewinds it). Rebalances wait for this before partitions move."""
        pending = self._unacknowledged
        if pending is None:
            return True
        await asyncio.wait([pending.acknowledged])
        return not pending.acknowledged.cancelled() and pending.acknowledged.exception() is None

    async def publish(
        self,
        publications: Sequence[Publication],
        records: Sequence[Record],
        message: Rewindable,
    ) -> None:
        pending, self._unacknowledged = self._unacknowledged, None
        if pending is not None:
            try:
                await pending.acknowledged
            except BaseException:
                await self._abandon()
                # This batch first (it may share partitions with the earlier one), then the
                # earlier one: each partition ends at the earliest offset not finished.
                await _rewind(message, pending.message)
                raise
        try:
            self._failures = []
            self._produce(publications)
        except BaseException:
            await self._abandon()
            await _rewind(message)
            raise
        finishing = asyncio.create_task(self._finish(next_offsets(records)))
        self._unacknowledged = _Unacknowledged(finishing, message)

    def attach(self, consumer: ConfluentConsumer) -> CommitOffsets | None:
        super().attach(consumer)

        async def hand_over(offsets: dict[TopicPartition, int]) -> None:
            if not await self.settle():
                raise RuntimeError("the last batch's results were not acknowledged")
            # Committed by `commit_revoked` on the consumer's own thread right after: a commit
            # from any other thread deadlocks with a closing consumer.
            self._revoked = [
                ConfluentPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()
            ]

        return hand_over

    def commit_assigned(
        self,
        consumer: Any,  # noqa: ANN401 - confluent's Consumer
        partitions: list[ConfluentPartition],
        processed: dict[TopicPartition, int],
    ) -> None:
        # librdkafka evicts a member whose batch outlasts the poll interval, and rejoins only at
        # the next `consume`: the batch's commit comes in between and is refused, though its
        # results are published. Without this the same batch would be redone after every
        # rejoin, forever if every batch is that slow (aiokafka rejoins in the background and
        # its commit goes through). Only offsets ahead of the group's are committed, so a
        # partition another replica moved on in the meantime is never wound back.
        mine = [
            ConfluentPartition(p.topic, p.partition, processed[key])
            for p in partitions
            if (key := TopicPartition(p.topic, p.partition)) in processed
        ]
        if not mine:
            return
        try:
            committed = {
                (c.topic, c.partition): c.offset
                for c in consumer.committed(
                    [ConfluentPartition(p.topic, p.partition) for p in mine]
                )
            }
            ahead = [p for p in mine if p.offset > committed.get((p.topic, p.partition), -1)]
            if ahead:
                consumer.commit(offsets=ahead, asynchronous=False)
                logger.info(
                    "committed published offsets on assignment", extra={"partitions": len(ahead)}
                )
        except KafkaException:
            logger.exception("catching up the group's offsets failed; a batch may be redone")

    def commit_revoked(self, consumer: Any) -> None:  # noqa: ANN401 - confluent's Consumer
        revoked, self._revoked = self._revoked, []
        if not revoked:
            return
        try:
            consumer.commit(offsets=revoked, asynchronous=False)
        except KafkaException as error:
            # Refused after an eviction (the batch outlasted the poll interval); the group moves
            # on either way, and `commit_assigned` catches up if the partition comes back.
            logger.warning(
                "committing revoked partitions failed; their last batch may be redone",
                extra={"error": str(error)},
            )

    async def _finish(self, offsets: dict[tuple[str, int], int]) -> None:
        # `flush` serves the failed deliveries' callbacks; nothing else is queued meanwhile,
        # since the next batch waits for this task.
        producer = self._started()
        left = await asyncio.to_thread(producer.flush, self._timeout_seconds())
        self._raise_failures()
        if left:
            raise TimeoutError(f"{left} results not acknowledged in {self._timeout_seconds()} s")
        self._commit_between_fetches(offsets)

    def _commit_between_fetches(self, offsets: dict[tuple[str, int], int]) -> None:
        """Queue the commit on the consumer's thread, after the fetch running there.

        Never from this thread: a commit blocks while the consumer thread is inside a rebalance
        callback, and that callback waits for this event loop. Nothing waits for the commit: a
        commit lost on the way only means a batch redone, and the next one carries these
        offsets too. By the time it runs, a rebalance may have moved a partition elsewhere
        (and committed it on the way out), so only partitions still owned are committed."""
        if not offsets:
            return
        try:
            consumer = self._attached()
            client = consumer.client

            def commit() -> None:
                try:
                    owned = {(p.topic, p.partition) for p in client.assignment()}
                except RuntimeError:
                    # Closed while this waited behind the close: the close's revocation waited
                    # for the batch and committed the partitions, these offsets included.
                    return
                mine = {slot: offset for slot, offset in offsets.items() if slot in owned}
                if mine:
                    client.commit(offsets=_partitions(mine), asynchronous=True)

            consumer.submit(commit).add_done_callback(_log_commit_failure)
        except RuntimeError:
            # Stopped: the consumer committed what it owned as it closed.
            return


class ConfluentExactlyOnce(_ConfluentDelivery):
    """Batches' results and their next offsets are committed in producer transactions.

    A transaction stays open across batches that come full (a backlog), up to
    `transaction_span_ms`; a batch that is not full commits it at once, and so do rebalances,
    stop, and a timer once the span is up (the next batch may be slow). Until then the batches
    in it are not durable: if its commit fails, it is aborted and all of them are rewound (the
    batch being published too), as at least once rewinds a failed acknowledgement.

    The next transaction is not begun while one commits: a transaction begun right after the
    previous commit is refused by the coordinator (concurrent transactions) until that commit's
    markers are written, and librdkafka retries after `retry.backoff.ms`. Overlapped, p50 at
    2,000 events/s was 138 ms against 35 ms (`bench/bus_bench.py --columns eos-confluent`).
    That first retry comes after 10 ms here, not librdkafka's 100 (later ones back off up to
    its `retry.backoff.max.ms`): p99 at 2,000 events/s was 52 and 73 ms against 103 and 144.
    """

    isolation_level: IsolationLevel = "read_committed"

    def __init__(self, settings: ServiceSettings, *, client_id: str, group_id: str) -> None:
        super().__init__(settings, client_id=client_id, group_id=group_id)
        self._span_seconds = settings.batch.transaction_span_ms / 1000
        self._full_batch = settings.batch.max_records
        self._lock = asyncio.Lock()
        """Held while a transaction is added to or committed: publish, the timer, settle."""
        self._open: list[Rewindable] = []
        """The batches in the open transaction, oldest first; empty when none is open."""
        self._open_offsets: dict[tuple[str, int], int] = {}
        self._opened_at = 0.0
        self._group: Any = None
        """The consumer's group metadata as of the last batch published (read then, while the
        consumer's thread is between fetches: its calls block inside a rebalance callback)."""
        self._timer: asyncio.Task[None] | None = None
        self._lost: list[Rewindable] = []
        """Batches of a transaction the timer failed to commit: rewound already, and rewound
        again after the batch published next, which was fetched before they were."""

    def _config(self) -> dict[str, Any]:
        batch = self._settings.batch
        transactional_id = batch.transactional_id or f"{self._group_id}-{socket.gethostname()}"
        config = super()._config()
        return {
            **config,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": batch.transaction_timeout_ms,
            "retry.backoff.ms": 10,
            # librdkafka refuses a request timeout longer than the transaction's.
            "socket.timeout.ms": min(
                int(config["socket.timeout.ms"]), batch.transaction_timeout_ms
            ),
        }

    async def start(self) -> None:
        await super().start()
        # Fences a predecessor with the same transactional id and aborts its open transaction.
        await asyncio.to_thread(self._started().init_transactions, self._timeout_seconds())

    async def publish(
        self,
        publications: Sequence[Publication],
        records: Sequence[Record],
        message: Rewindable,
    ) -> None:
        async with self._lock:
            lost, self._lost = self._lost, []
            if lost:
                # This batch first, then the lost ones: each partition ends at its earliest.
                await _rewind(message, *reversed(lost))
                raise RuntimeError("the transaction before this batch failed to commit")
            try:
                if not self._open:
                    self._failures = []
                    self._started().begin_transaction()
                    self._opened_at = time.monotonic()
                self._produce(publications)
                self._group = self._attached().client.consumer_group_metadata()
            except BaseException:
                await self._abort_open(rewind=(message,))
                raise
            self._open.append(message)
            for slot, offset in next_offsets(records).items():
                self._open_offsets[slot] = max(offset, self._open_offsets.get(slot, 0))
            age = time.monotonic() - self._opened_at
            if len(records) >= self._full_batch and age < self._span_seconds:
                if self._timer is None:
                    self._timer = asyncio.create_task(self._commit_later(self._span_seconds - age))
                return
            try:
                await self._commit_open()
            except BaseException:
                await self._abort_open()
                raise

    async def settle(self) -> bool:
        """Commit the open transaction (rebalances and stop call this); False if it failed.
        A failed one is aborted but not rewound: a rebalance or a stop resets the positions."""
        async with self._lock:
            return not self._open or await self._commit_or_abort(rewind=None)

    async def stop(self) -> None:
        await super().stop()
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    async def _commit_later(self, delay_seconds: float) -> None:
        await asyncio.sleep(delay_seconds)
        async with self._lock:
            self._timer = None
            batches = list(self._open)
            if batches and not await self._commit_or_abort(rewind=()):
                # Rewound at once (an idle stream redoes them too); the next batch published
                # raises, since it was fetched before this rewind.
                self._lost = batches

    async def _commit_or_abort(self, rewind: tuple[Rewindable, ...] | None) -> bool:
        """Commit the open transaction; if that fails, log it, abort it and rewind as
        `_abort_open` does, and return False."""
        try:
            await self._commit_open()
        except Exception as error:  # noqa: BLE001 - reported, and the batches are redone
            logger.warning(
                "committing the open transaction failed; its batches will be redone",
                extra={"error": str(error), "batches": len(self._open)},
            )
            await self._abort_open(rewind=rewind)
            return False
        return True

    async def _commit_open(self) -> None:
        """Commit the open transaction: its batches' offsets, then everything in it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        producer = self._started()
        timeout = self._timeout_seconds()
        partitions = _partitions(self._open_offsets)
        await asyncio.to_thread(
            producer.send_offsets_to_transaction, partitions, self._group, timeout
        )
        await asyncio.to_thread(producer.commit_transaction, timeout)
        self._raise_failures()
        self._open = []
        self._open_offsets = {}

    async def _abort_open(self, rewind: tuple[Rewindable, ...] | None = ()) -> None:
        """Abort the open transaction and rewind `rewind` and then its batches, newest first,
        so each partition ends at its earliest record not committed; None rewinds nothing."""
        batches, self._open, self._open_offsets = self._open, [], {}
        await self._abandon()
        if rewind is not None:
            await _rewind(*rewind, *reversed(batches))

    async def _abandon(self) -> None:
        producer = self._started()
        # No transaction open, or the producer was fenced: the batch is redone either way.
        with contextlib.suppress(KafkaException):
            await asyncio.to_thread(producer.abort_transaction, self._timeout_seconds())
        self._failures = []


def _log_commit_failure(done: Future[None]) -> None:
    error = done.exception()
    if error is not None:
        logger.warning(
            "committing a batch's offsets failed; it may be redone", extra={"error": str(error)}
        )


def _partitions(offsets: dict[tuple[str, int], int]) -> list[ConfluentPartition]:
    return [ConfluentPartition(topic, partition, o) for (topic, partition), o in offsets.items()]


async def _rewind(*messages: Rewindable) -> None:
    for message in messages:
        # A partition revoked since cannot be sought; its next owner redoes it.
        with contextlib.suppress(KafkaException):
            await message.nack()


def confluent_delivery_for(
    settings: ServiceSettings, *, client_id: str, group_id: str
) -> ConfluentAtLeastOnce | ConfluentExactlyOnce:
    chosen = (
        ConfluentExactlyOnce if settings.batch.delivery == "exactly_once" else ConfluentAtLeastOnce
    )
    return chosen(settings, client_id=client_id, group_id=group_id)
