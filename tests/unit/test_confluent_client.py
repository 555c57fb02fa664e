"""The confluent-kafka client's pieces without a broker: records, headers, settings, hand-over of
revoked offsets. (The same service on a real broker: `tests/integration/test_runtime_real_broker`
runs every runtime promise on both clients.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from confluent_kafka import Message
from confluent_kafka import TopicPartition as ConfluentPartition
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from shopstream.echo import EchoSettings
from shopstream.runtime.confluent import (
    ConfluentAtLeastOnce,
    ConfluentExactlyOnce,
    RebalanceBridge,
    confluent_delivery_for,
    record_of,
    tolerant_headers,
)
from shopstream.runtime.metrics import ServiceMetrics
from shopstream.runtime.partitions import PartitionTracker
from shopstream.runtime.records import Record
from shopstream.runtime.security import librdkafka_options
from shopstream.settings import BatchSettings, KafkaSettings


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


def test_binary_and_null_headers_become_printable_and_the_value_stays_exact() -> None:
    bad = message(b"\xff\x00raw", [("trace", b"\xff\x00"), ("empty", None), ("ok", b"yes")])
    good = message(b"{}", [("ok", b"yes")])
    tolerant_headers([bad, good])
    headers = dict(bad.headers() or [])
    for value in headers.values():
        assert isinstance(value, bytes)
        value.decode("utf-8")
    assert headers["ok"] == b"yes"
    assert bad.value() == b"\xff\x00raw"
    assert good.headers() == [("ok", b"yes")]


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
