"""The confluent-kafka client's pieces without a broker: records, headers, settings, hand-over of
revoked offsets. (The same service on a real broker: `tests/integration/test_runtime_real_broker`
runs every runtime promise on both clients.)"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as ConfluentPartition
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from shopstream.echo import EchoSettings
from shopstream.events import Producer
from shopstream.runtime.batch import FatalServiceError, Publication
from shopstream.runtime.client_thread import ClientThread
from shopstream.runtime.codec import DecodeFailure, FailureReason
from shopstream.runtime.confluent import (
    ConfluentAtLeastOnce,
    ConfluentExactlyOnce,
    RebalanceBridge,
    confluent_delivery_for,
)
from shopstream.runtime.confluent_consumer import (
    _IDLE_WAIT_SECONDS,
    BatchRewind,
    ConfluentConsumer,
    _records,
    record_of,
)
from shopstream.runtime.dead_letters import dead_letter_for
from shopstream.runtime.metrics import ServiceMetrics
from shopstream.runtime.partitions import PartitionTracker
from shopstream.runtime.records import Record
from shopstream.runtime.security import librdkafka_options
from shopstream.settings import BatchSettings, KafkaSettings
from support.confluent import consumer_around


def message(value: bytes | None, headers: list[tuple[str, bytes | None]] | None = None) -> Message:
    return Message(topic="t", partition=2, offset=41, key=b"k", value=value, headers=headers)


def test_record_keeps_position_key_value_and_headers() -> None:
    record = record_of(message(b"{}", [("event_type", b"review.submitted")]))
    assert (record.topic, record.partition, record.offset, record.key) == ("t", 2, 41, b"k")
    assert record.value == b"{}"
    assert record.headers == (("event_type", b"review.submitted"),)
    assert not record.tombstone


def test_a_null_value_is_a_tombstone() -> None:
    assert record_of(message(None)).tombstone


def test_binary_and_null_headers_are_kept_exact_and_the_dead_letter_prints_them() -> None:
    # The runtime reads no header of a consumed record: they stay as librdkafka gave them, and
    # only a dead letter turns them into text.
    record = record_of(message(b"\xff\x00raw", [("binary", b"\xff\x00"), ("null", None)]))
    assert record.headers == (("binary", b"\xff\x00"), ("null", None))
    assert record.value == b"\xff\x00raw"
    letter = dead_letter_for(
        record,
        DecodeFailure(FailureReason.INVALID_JSON, "ValidationError", "bad"),
        Producer(name="echo", version="1"),
    )
    assert letter.payload.original_headers == {"binary": "\ufffd\x00", "null": ""}


def test_fetch_errors_in_a_batch_are_skipped_not_handled_as_records() -> None:
    failed = Message(error=KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
    eof = Message(error=KafkaError(KafkaError._PARTITION_EOF))
    kept = _records([message(b"{}"), failed, eof, message(b"[]")])
    assert [record.value for record in kept] == [b"{}", b"[]"]


def test_librdkafka_options_carry_sasl_and_certificate_files(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    options = librdkafka_options(
        KafkaSettings(
            bootstrap_servers="b:9093",
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="svc",
            sasl_password=SecretStr("s3cret"),
            ssl_cafile=ca,
        )
    )
    assert options["security.protocol"] == "sasl_ssl"
    assert options["sasl.mechanism"] == "SCRAM-SHA-256"
    assert (options["sasl.username"], options["sasl.password"]) == ("svc", "s3cret")
    assert options["ssl.ca.location"] == str(ca)
    assert "ssl.certificate.location" not in options


def test_librdkafka_options_refuse_sasl_without_credentials() -> None:
    with pytest.raises(ValueError, match="SASL needs"):
        librdkafka_options(KafkaSettings(security_protocol="SASL_PLAINTEXT"))


def test_producers_are_idempotent_keyed_like_java_and_transactional_when_asked() -> None:
    settings = EchoSettings(batch=BatchSettings(delivery="exactly_once", transactional_id="tx-1"))
    exactly_once = confluent_delivery_for(settings, client_id="c", group_id="g")
    assert isinstance(exactly_once, ConfluentExactlyOnce)
    config = exactly_once._config()
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["partitioner"] == "murmur2_random"
    assert config["transactional.id"] == "tx-1"
    # librdkafka refuses a request timeout longer than the transaction timeout.
    assert int(config["socket.timeout.ms"]) <= settings.batch.transaction_timeout_ms
    at_least_once = confluent_delivery_for(EchoSettings(), client_id="c", group_id="g")
    assert isinstance(at_least_once, ConfluentAtLeastOnce)
    assert "transactional.id" not in at_least_once._config()


def test_the_producer_lingers_per_client_unless_told() -> None:
    # librdkafka: results queued while a batch is published leave in a few full requests; the
    # flush ending the batch sends the rest at once. aiokafka gets each partition's batch ready.
    default = confluent_delivery_for(EchoSettings(), client_id="c", group_id="g")
    assert default._config()["linger.ms"] == 5
    assert BatchSettings().producer_linger_ms("aiokafka") == 0
    told = EchoSettings(batch=BatchSettings(linger_ms=0))
    assert confluent_delivery_for(told, client_id="c", group_id="g")._config()["linger.ms"] == 0
    assert BatchSettings(linger_ms=20).producer_linger_ms("aiokafka") == 20


class RecordingConsumer:
    """Stands in for confluent's Consumer: records synchronous commits."""

    def __init__(self, committed: dict[tuple[str, int], int] | None = None) -> None:
        self.commits: list[list[tuple[str, int, int]]] = []
        self._committed = committed or {}

    def committed(self, partitions: list[ConfluentPartition]) -> list[ConfluentPartition]:
        return [
            ConfluentPartition(
                p.topic, p.partition, self._committed.get((p.topic, p.partition), -1001)
            )
            for p in partitions
        ]

    def commit(self, *, offsets: list[ConfluentPartition], asynchronous: bool) -> None:
        assert asynchronous is False
        self.commits.append([(o.topic, o.partition, o.offset) for o in offsets])


class NoSubscriber:
    consumer: Any = None


async def test_a_revocation_commits_the_processed_offsets_on_the_consumer_thread() -> None:
    tracker = PartitionTracker(ServiceMetrics("unit_revoke", CollectorRegistry()))
    delivery = ConfluentAtLeastOnce(EchoSettings(), client_id="c", group_id="g")
    tracker.commit = delivery.attach(NoSubscriber())
    bridge = RebalanceBridge(tracker, delivery)
    bridge.loop = asyncio.get_running_loop()
    consumer = RecordingConsumer()
    owned = [ConfluentPartition("t", 0), ConfluentPartition("t", 1)]
    # librdkafka calls back on its consumer thread while the event loop runs on.
    await asyncio.to_thread(bridge.on_assign, consumer, owned)
    assert tracker.assigned == {TopicPartition("t", 0), TopicPartition("t", 1)}
    tracker.note_processed([Record("t", 1, offset, None, b"", ()) for offset in (7, 8)])
    await asyncio.to_thread(bridge.on_revoke, consumer, owned)
    assert consumer.commits == [[("t", 1, 9)]]


async def test_exactly_once_commits_nothing_on_revocation() -> None:
    tracker = PartitionTracker(ServiceMetrics("unit_eos", CollectorRegistry()))
    delivery = ConfluentExactlyOnce(EchoSettings(), client_id="c", group_id="g")
    tracker.commit = delivery.attach(NoSubscriber())
    assert tracker.commit is None
    bridge = RebalanceBridge(tracker, delivery)
    bridge.loop = asyncio.get_running_loop()
    consumer = RecordingConsumer()
    await asyncio.to_thread(bridge.on_assign, consumer, [ConfluentPartition("t", 0)])
    await asyncio.to_thread(bridge.on_revoke, consumer, [ConfluentPartition("t", 0)])
    assert consumer.commits == []


async def test_an_assignment_commits_published_offsets_the_group_is_behind_on() -> None:
    # After an eviction (a batch longer than the poll interval) the batch's commit was refused
    # though its results were published; the group must not redo it after the rejoin, and a
    # partition another replica moved further meanwhile must not be wound back.
    tracker = PartitionTracker(ServiceMetrics("unit_assign", CollectorRegistry()))
    delivery = ConfluentAtLeastOnce(EchoSettings(), client_id="c", group_id="g")
    tracker.commit = delivery.attach(NoSubscriber())
    bridge = RebalanceBridge(tracker, delivery)
    bridge.loop = asyncio.get_running_loop()
    tracker.note_processed([Record("t", 0, 99, None, b"", ()), Record("t", 1, 9, None, b"", ())])
    consumer = RecordingConsumer(committed={("t", 0): 50, ("t", 1): 200})
    owned = [ConfluentPartition("t", 0), ConfluentPartition("t", 1), ConfluentPartition("t", 2)]
    await asyncio.to_thread(bridge.on_assign, consumer, owned)
    assert consumer.commits == [[("t", 0, 100)]]


class GatedProducer:
    """Stands in for librdkafka's producer: `flush` waits until the test lets it finish."""

    def __init__(self) -> None:
        self.produced: list[bytes | None] = []
        self.gate = threading.Event()
        self.fail_next_flush = False
        self.calls: list[str] = []

    def produce(self, topic: str, *, value: bytes | None, key: bytes, headers: Any) -> None:
        self.produced.append(value)

    def flush(self, timeout: float) -> int:
        self.gate.wait(timeout)
        if self.fail_next_flush:
            self.fail_next_flush = False
            return 1
        return 0

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def send_offsets_to_transaction(self, offsets: Any, group: Any, timeout: float) -> None:
        self.calls.append(f"offsets {[(o.topic, o.partition, o.offset) for o in offsets]}")

    def commit_transaction(self, timeout: float) -> None:
        self.gate.wait(timeout)
        if self.fail_next_flush:
            self.fail_next_flush = False
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        self.calls.append("commit")

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort")


class OwningConsumer:
    """Stands in for librdkafka's consumer: owns some partitions, records commits and seeks
    with the thread they came from."""

    def __init__(self, owned: set[tuple[str, int]]) -> None:
        self.owned = owned
        self.closed = False
        self.commits: list[tuple[list[tuple[str, int, int]], str]] = []
        self.seeks: list[tuple[str, int, int, str]] = []

    def seek(self, partition: ConfluentPartition) -> None:
        if (partition.topic, partition.partition) not in self.owned:
            raise KafkaException(KafkaError(KafkaError._STATE))
        thread = threading.current_thread().name
        self.seeks.append((partition.topic, partition.partition, partition.offset, thread))

    def assignment(self) -> list[ConfluentPartition]:
        if self.closed:
            raise RuntimeError("Consumer closed")
        return [ConfluentPartition(topic, partition) for topic, partition in self.owned]

    def commit(self, *, offsets: list[ConfluentPartition], asynchronous: bool) -> None:
        batch = [(o.topic, o.partition, o.offset) for o in offsets]
        self.commits.append((batch, threading.current_thread().name))

    def consumer_group_metadata(self) -> str:
        return "group-metadata"


class Subscriber:
    """Stands in for `ConfluentConsumer`: the client plus the one thread every call runs on."""

    def __init__(self, consumer: OwningConsumer) -> None:
        self.client = consumer
        self._thread = ClientThread("consumer")

    def submit(self, call: Callable[[], Any]) -> Future[Any]:
        return self._thread.submit(call)


class BatchMessage:
    """A batch's FastStream message: records whether it was rewound."""

    def __init__(self, name: str, rewound: list[str]) -> None:
        self.name = name
        self._rewound = rewound

    async def nack(self) -> None:
        self._rewound.append(self.name)


def records(partition: int, *offsets: int) -> list[Record]:
    return [Record("t", partition, offset, b"k", b"{}", ()) for offset in offsets]


def publications(count: int) -> list[Publication]:
    return [Publication("out", None, b"k") for _ in range(count)]


async def settled_commits(source: Subscriber) -> None:
    # Commits are queued on the consumer's thread; let it run them.
    await asyncio.to_thread(source.submit(lambda: None).result)


async def test_a_rewind_seeks_each_partition_back_to_its_earliest_record() -> None:
    client = OwningConsumer({("t", 0), ("t", 1)})
    source = Subscriber(client)
    batch = records(0, 7, 5, 6) + records(1, 3) + records(2, 9)
    # Partition 2 was revoked since: it cannot be sought, and the others still are.
    await BatchRewind(source, batch).nack()  # type: ignore[arg-type]  # a stand-in
    assert sorted(client.seeks) == [("t", 0, 5, "consumer"), ("t", 1, 3, "consumer")]


def test_the_consumer_commits_only_what_the_runtime_says() -> None:
    consumer = ConfluentConsumer(
        EchoSettings(batch=BatchSettings(max_records=77, batch_timeout_ms=5)),
        client_id="c",
        group_id="g",
        topics=["a", "b"],
        isolation_level="read_committed",
        max_poll_interval_ms=300_000,
        on_assign=lambda consumer, partitions: None,
        on_revoke=lambda consumer, partitions: None,
    )
    config = consumer._config
    assert config["enable.auto.commit"] is False
    assert config["allow.auto.create.topics"] is False
    assert (config["group.id"], config["isolation.level"]) == ("g", "read_committed")
    with pytest.raises(RuntimeError, match="not running"):
        consumer.submit(lambda: None)


async def test_at_least_once_overlaps_the_acknowledgement_and_commits_only_after_it() -> None:
    delivery = ConfluentAtLeastOnce(EchoSettings(), client_id="c", group_id="g")
    producer = GatedProducer()
    consumer = OwningConsumer({("t", 0), ("t", 1)})
    source = Subscriber(consumer)
    delivery.attach(source)
    delivery._producer = producer  # type: ignore[assignment]
    rewound: list[str] = []
    # The first batch is queued and publish returns while the broker has not answered yet.
    await delivery.publish(publications(2), records(0, 5, 6), BatchMessage("first", rewound))
    assert len(producer.produced) == 2
    await settled_commits(source)
    assert consumer.commits == []
    # Once acknowledged, its offsets are committed on the consumer's thread, not this one.
    producer.gate.set()
    assert await delivery.settle()
    await settled_commits(source)
    assert consumer.commits == [([("t", 0, 7)], "consumer")]
    # A partition revoked since the batch was published is left to its next owner.
    consumer.owned = {("t", 1)}
    await delivery.publish(publications(1), records(0, 7) + records(1, 3), BatchMessage("b", []))
    assert await delivery.settle()
    await settled_commits(source)
    assert consumer.commits[-1] == ([("t", 1, 4)], "consumer")
    assert rewound == []
    # A commit that waited behind the consumer's close is dropped quietly: the close's
    # revocation already committed what this replica owned.
    consumer.closed = True
    committed = len(consumer.commits)
    await delivery.publish(publications(1), records(1, 4), BatchMessage("late", []))
    assert await delivery.settle()
    await settled_commits(source)
    assert len(consumer.commits) == committed


async def test_unacknowledged_results_rewind_both_batches_and_commit_nothing() -> None:
    delivery = ConfluentAtLeastOnce(EchoSettings(), client_id="c", group_id="g")
    producer = GatedProducer()
    consumer = OwningConsumer({("t", 0)})
    source = Subscriber(consumer)
    delivery.attach(source)
    delivery._producer = producer  # type: ignore[assignment]
    producer.fail_next_flush = True
    producer.gate.set()
    rewound: list[str] = []
    await delivery.publish(publications(2), records(0, 5, 6), BatchMessage("first", rewound))
    assert not await delivery.settle()
    with pytest.raises(TimeoutError, match="not acknowledged"):
        await delivery.publish(publications(1), records(0, 7), BatchMessage("second", rewound))
    # The later batch is rewound first, so the earlier one's offsets win where they share a
    # partition; the later batch's results were never queued.
    assert rewound == ["second", "first"]
    assert len(producer.produced) == 2
    await settled_commits(source)
    assert consumer.commits == []
    # The service goes on: the redone batches are published and committed as usual.
    await delivery.publish(publications(2), records(0, 5, 6), BatchMessage("again", rewound))
    assert await delivery.settle()
    await settled_commits(source)
    assert consumer.commits == [([("t", 0, 7)], "consumer")]


async def test_exactly_once_commits_each_transaction_before_the_next_batch() -> None:
    settings = EchoSettings(batch=BatchSettings(delivery="exactly_once", transactional_id="tx"))
    delivery = ConfluentExactlyOnce(settings, client_id="c", group_id="g")
    producer = GatedProducer()
    producer.gate.set()
    delivery.attach(Subscriber(OwningConsumer({("t", 0)})))
    delivery._producer = producer  # type: ignore[assignment]
    rewound: list[str] = []
    await delivery.publish(publications(1), records(0, 9), BatchMessage("first", rewound))
    assert producer.calls == ["begin", "offsets [('t', 0, 10)]", "commit"]
    # A failed commit is aborted and its batch rewound before `publish` raises.
    producer.fail_next_flush = True
    with pytest.raises(KafkaException):
        await delivery.publish(publications(1), records(0, 10), BatchMessage("second", rewound))
    assert producer.calls[-1] == "abort"
    assert rewound == ["second"]


def spanning_delivery(span_ms: int = 10_000) -> tuple[ConfluentExactlyOnce, GatedProducer]:
    """Exactly once with batches of at most 2 records: a batch of 2 is full (a backlog)."""
    batch = BatchSettings(
        delivery="exactly_once", transactional_id="tx", max_records=2, transaction_span_ms=span_ms
    )
    delivery = ConfluentExactlyOnce(EchoSettings(batch=batch), client_id="c", group_id="g")
    producer = GatedProducer()
    producer.gate.set()
    delivery.attach(Subscriber(OwningConsumer({("t", 0), ("t", 1)})))
    delivery._producer = producer  # type: ignore[assignment]
    return delivery, producer


async def test_full_batches_share_a_transaction_until_one_comes_short() -> None:
    delivery, producer = spanning_delivery()
    rewound: list[str] = []
    await delivery.publish(publications(2), records(0, 0, 1), BatchMessage("a", rewound))
    await delivery.publish(publications(2), records(1, 0, 1), BatchMessage("b", rewound))
    # A backlog: both results are queued in one open transaction, nothing committed yet.
    assert producer.calls == ["begin"]
    assert len(producer.produced) == 4
    await delivery.publish(publications(1), records(0, 2), BatchMessage("c", rewound))
    assert producer.calls == ["begin", "offsets [('t', 0, 3), ('t', 1, 2)]", "commit"]
    assert rewound == []


async def test_an_open_transaction_commits_when_its_span_is_up() -> None:
    delivery, producer = spanning_delivery(span_ms=20)
    await delivery.publish(publications(2), records(0, 0, 1), BatchMessage("a", []))
    assert producer.calls == ["begin"]
    await asyncio.sleep(0.2)
    assert producer.calls == ["begin", "offsets [('t', 0, 2)]", "commit"]


async def test_a_spanning_transaction_that_fails_rewinds_all_its_batches_newest_first() -> None:
    delivery, producer = spanning_delivery()
    rewound: list[str] = []
    await delivery.publish(publications(2), records(0, 0, 1), BatchMessage("a", rewound))
    await delivery.publish(publications(2), records(0, 2, 3), BatchMessage("b", rewound))
    producer.fail_next_flush = True
    with pytest.raises(KafkaException):
        await delivery.publish(publications(1), records(0, 4), BatchMessage("c", rewound))
    assert producer.calls[-1] == "abort"
    # Each partition ends at the earliest record not committed: a's.
    assert rewound == ["c", "b", "a"]
    # The next batch starts a transaction of its own.
    await delivery.publish(publications(1), records(0, 0), BatchMessage("a again", rewound))
    assert producer.calls[-3:] == ["begin", "offsets [('t', 0, 1)]", "commit"]


async def test_a_failed_timed_commit_rewinds_its_batches_and_fails_the_next_one() -> None:
    delivery, producer = spanning_delivery(span_ms=20)
    rewound: list[str] = []
    producer.fail_next_flush = True
    await delivery.publish(publications(2), records(0, 5, 6), BatchMessage("a", rewound))
    await asyncio.sleep(0.2)
    # Rewound at once, so an idle stream redoes it too.
    assert (producer.calls[-1], rewound) == ("abort", ["a"])
    # The batch fetched before that rewind must not be published past it.
    with pytest.raises(RuntimeError, match="failed to commit"):
        await delivery.publish(publications(1), records(0, 7), BatchMessage("b", rewound))
    assert rewound == ["a", "b", "a"]
    assert producer.calls.count("begin") == 1


async def test_settle_commits_the_open_transaction_for_a_rebalance() -> None:
    delivery, producer = spanning_delivery()
    await delivery.publish(publications(2), records(1, 3, 4), BatchMessage("a", []))
    assert await delivery.settle()
    assert producer.calls == ["begin", "offsets [('t', 1, 5)]", "commit"]
    assert await delivery.settle()
    assert producer.calls.count("commit") == 1


def test_a_span_must_end_inside_the_transaction_timeout() -> None:
    with pytest.raises(ValueError, match="transaction_span_ms"):
        BatchSettings(transaction_span_ms=20_000, transaction_timeout_ms=15_000)


class ScriptedClient(OwningConsumer):
    """Stands in for librdkafka's consumer: `consume` hands out scripted batches, then none."""

    def __init__(self, batches: list[list[Message]]) -> None:
        super().__init__({("t", 0), ("t", 1)})
        self.batches = batches

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        return self.batches.pop(0) if self.batches else []


def at(partition: int, *offsets: int) -> list[Message]:
    return [Message(topic="t", partition=partition, offset=o, value=b"{}") for o in offsets]


def scripted_consumer(client: ScriptedClient) -> ConfluentConsumer:
    return consumer_around(client)


async def test_a_batch_that_fails_before_publishing_is_rewound_by_the_loop() -> None:
    client = ScriptedClient([at(0, 4, 5) + at(1, 8)])
    consumer = scripted_consumer(client)

    async def handle(batch: list[Record], rewind: BatchRewind) -> None:
        consumer._running = False
        raise ValueError("the handler broke before any result was queued")

    await consumer._fetch_and_handle(handle)
    # Without this the next batch's commit would move the group past these records.
    assert sorted(client.seeks) == [("t", 0, 4, "consumer"), ("t", 1, 8, "consumer")]


async def test_a_batch_the_delivery_rewound_is_not_sought_again() -> None:
    client = ScriptedClient([at(0, 7)])
    consumer = scripted_consumer(client)
    earlier = [Record("t", 0, 5, None, b"{}", ())]

    async def handle(batch: list[Record], rewind: BatchRewind) -> None:
        # As at-least-once does when the earlier batch's acknowledgement failed: this batch,
        # then the earlier one. Seeking this one again would skip offsets 5 and 6.
        await rewind.nack()
        await BatchRewind(consumer, earlier).nack()
        consumer._running = False
        raise TimeoutError("results not acknowledged")

    await consumer._fetch_and_handle(handle)
    assert client.seeks == [("t", 0, 7, "consumer"), ("t", 0, 5, "consumer")]


async def test_a_fatal_error_stops_fetching_and_leaves_the_batch_uncommitted() -> None:
    client = ScriptedClient([at(1, 3), at(1, 4)])
    consumer = scripted_consumer(client)
    handled: list[int] = []

    async def handle(batch: list[Record], rewind: BatchRewind) -> None:
        handled.append(batch[0].offset)
        raise FatalServiceError("CUDA device lost")

    await consumer._fetch_and_handle(handle)
    assert handled == [3]
    assert client.seeks == [("t", 1, 3, "consumer")]
    assert not consumer.running


class RecordingClient(ScriptedClient):
    """A scripted stand-in that also records each `consume` call's size and timeout."""

    def __init__(self, batches: list[list[Message]]) -> None:
        super().__init__(batches)
        self.calls: list[tuple[int, float]] = []

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        self.calls.append((num_messages, timeout))
        return super().consume(num_messages, timeout)


async def test_an_idle_consumer_waits_for_a_first_record_then_fills_the_batch() -> None:
    # A full poll, an empty one, then the idle wait's first record and the batch filled after it.
    client = RecordingClient([at(0, 1, 2), [], at(0, 3), at(0, 4, 5)])
    consumer = scripted_consumer(client)
    handled: list[list[int]] = []

    async def handle(batch: list[Record], rewind: BatchRewind) -> None:
        handled.append([record.offset for record in batch])
        if len(handled) == 2:
            consumer._running = False

    await consumer._fetch_and_handle(handle)
    assert handled == [[1, 2], [3, 4, 5]]
    batch_timeout = EchoSettings().batch.batch_timeout_ms / 1000
    # Not a poll every batch timeout while nothing arrives: one wait for a single record, then
    # what arrives within the batch timeout, up to the rest of the batch.
    assert client.calls == [
        (64, batch_timeout),
        (64, batch_timeout),
        (1, _IDLE_WAIT_SECONDS),
        (63, batch_timeout),
    ]
