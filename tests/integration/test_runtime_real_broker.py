"""The runtime on a real broker: dead letters, bisection, crash recovery, consumer groups."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from aiokafka import AIOKafkaProducer

from shopstream.echo import build_echo_service
from shopstream.events import ReviewSubmitted
from shopstream.kafka_io import publish_events
from shopstream.runtime.admin import ensure_topics
from shopstream.settings import BatchSettings, KafkaSettings
from shopstream.topics import TopicSettings, dead_letter_topic
from support.echo import echo_settings
from support.figures import record
from support.kafka import collect, unique

pytestmark = pytest.mark.integration


@pytest.fixture(params=["aiokafka", "confluent"])
def client(request: pytest.FixtureRequest) -> str:
    """Every runtime promise holds on both Kafka clients a service may run with."""
    chosen: str = request.param
    return chosen


def reviews(count: int, tenant: str = "acme", text: str = "fine") -> list[ReviewSubmitted]:
    return [
        ReviewSubmitted(
            tenant_id=tenant,
            payload={"review_id": f"r{i}", "product_id": f"p{i % 7}", "text": f"{text} {i}"},
        )
        for i in range(count)
    ]


async def test_poison_records_are_dead_lettered_and_batch_mates_proceed(
    kafka_bootstrap: str, client: str
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, client=client)
    source = unique("it.poison")
    settings = echo_settings(kafka, source, batch=BatchSettings(max_event_bytes=4_096))
    good = reviews(20)
    missing_tenant = json.loads(good[0].to_json())
    del missing_tenant["tenant_id"]
    schema_violation = json.loads(good[1].to_json())
    schema_violation["payload"]["rating"] = "five stars"
    poison = {
        b"{not json": "invalid_json",
        json.dumps(missing_tenant).encode(): "missing_tenant",
        json.dumps(schema_violation).encode(): "schema_violation",
        b'{"text": "\xff\xfe"}': "invalid_utf8",
        b"x" * 5_000: "oversized",
    }
    poison_count = len(poison)
    service = build_echo_service(settings)
    await service.start()
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for index, event in enumerate(good):
                await producer.send(source, event.to_json(), key=b"k%d" % (index % 3))
                if index % 4 == 0 and poison:
                    value, _reason = poison.popitem()
                    await producer.send(source, value, key=b"poison")
            # A binary header must not wedge the batch while FastStream parses it.
            await producer.send(
                source, b"{also broken", key=b"poison", headers=[("trace", b"\xff\x00")]
            )
            await producer.flush()
        finally:
            await producer.stop()
        results = await collect(kafka, source + ".out", len(good))
        dead = await collect(kafka, dead_letter_topic(source), poison_count + 1)
    finally:
        await service.stop()
    assert sorted(r["causation_id"] for r in results) == sorted(str(e.event_id) for e in good)
    reasons = sorted(d["payload"]["reason"] for d in dead)
    assert reasons == sorted(
        [
            "invalid_json",
            "invalid_json",
            "missing_tenant",
            "schema_violation",
            "invalid_utf8",
            "oversized",
        ]
    )
    for letter in dead:
        assert letter["payload"]["original_topic"] == source
        assert letter["payload"]["error_message"]
        original = base64.b64decode(letter["payload"]["original_value_b64"])
        assert original  # the original bytes are kept whole for replay
        assert base64.b64decode(letter["payload"]["original_key_b64"]) == b"poison"


async def test_handler_failure_isolates_only_the_failing_record(
    kafka_bootstrap: str, client: str
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, client=client)
    source = unique("it.bisect")
    settings = echo_settings(kafka, source, fail_marker="EXPLODE")
    batch = reviews(30)
    bad = reviews(1, text="EXPLODE")[0]
    service = build_echo_service(settings)
    await service.start()
    try:
        # One produce call puts the bad record in the middle of one fetched batch.
        await publish_events(kafka, source, [*batch[:15], bad, *batch[15:]])
        results = await collect(kafka, source + ".out", len(batch))
        dead = await collect(kafka, dead_letter_topic(source), 1)
    finally:
        await service.stop()
    assert {r["causation_id"] for r in results} == {str(e.event_id) for e in batch}
    assert len(dead) == 1
    assert dead[0]["payload"]["reason"] == "processing_error"
    assert dead[0]["payload"]["error_class"] == "ValueError"
    assert json.loads(base64.b64decode(dead[0]["payload"]["original_value_b64"]))[
        "event_id"
    ] == str(bad.event_id)


def start_echo_process(
    kafka_bootstrap: str, source: str, delivery: str, client: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ECHO_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ECHO_KAFKA__CLIENT": client,
        "ECHO_INPUT_TOPIC": source,
        "ECHO_OUTPUT_TOPIC": source + ".out",
        "ECHO_GROUP_ID": source + ".group",
        "ECHO_HTTP_PORT": "0",
        "ECHO_DELAY_MS": "20",
        "ECHO_BATCH__MAX_RECORDS": "50",
        "ECHO_TOPICS__PARTITIONS": "3",
        "ECHO_BATCH__SESSION_TIMEOUT_MS": "6000",
        "ECHO_BATCH__HEARTBEAT_INTERVAL_MS": "1000",
        "ECHO_BATCH__DELIVERY": delivery,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "shopstream.cli", "run", "echo"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
async def test_sigkill_mid_stream_loses_nothing_and_duplicates_share_ids(
    kafka_bootstrap: str, delivery: str, client: str
) -> None:
    exactly_once = delivery == "exactly_once"
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    source = unique("it.crash")
    await ensure_topics(kafka, TopicSettings(partitions=3).specs((source, source + ".out")))
    events = reviews(2_000)
    await publish_events(kafka, source, events)
    process = start_echo_process(kafka_bootstrap, source, delivery, client)
    try:
        # Let it process part of the backlog, then kill it without any chance to clean up.
        first = await collect(kafka, source + ".out", 300, within=60)
        assert len(first) >= 300
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        killed_at = time.monotonic()
        partial = len(await collect(kafka, source + ".out", len(events), within=3))
        assert partial < len(events), "the crash should have happened mid-stream"
        process = start_echo_process(kafka_bootstrap, source, delivery, client)
        deadline = time.monotonic() + 120
        results: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            results = await collect(
                kafka, source + ".out", 10**9, within=3, read_committed=exactly_once
            )
            if {r["causation_id"] for r in results} >= {str(e.event_id) for e in events}:
                break
            await asyncio.sleep(1)
        recovery = time.monotonic() - killed_at
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, "SIGTERM should drain and exit cleanly"
    by_input: dict[object, set[object]] = {}
    for result in results:
        by_input.setdefault(result["causation_id"], set()).add(result["event_id"])
    assert set(by_input) == {str(e.event_id) for e in events}, "every input has a result"
    assert all(len(ids) == 1 for ids in by_input.values()), "duplicates carry the same id"
    if exactly_once:
        assert len(results) == len(events), "read_committed consumers see no duplicates"
    record(
        f"sigkill_{delivery}" + ("" if client == "aiokafka" else f"_{client}"),
        {
            "inputs": len(events),
            "results": len(results),
            "dead_letters": 0,
            "duplicates": len(results) - len(by_input),
            "recovery_seconds": round(recovery, 1),
        },
    )


async def test_two_consumers_in_one_group_share_the_partitions(
    kafka_bootstrap: str, client: str
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, client=client)
    source = unique("it.group")
    await ensure_topics(kafka, TopicSettings(partitions=6).specs((source,)))
    first = build_echo_service(echo_settings(kafka, source, delay_ms=5))
    second = build_echo_service(echo_settings(kafka, source, delay_ms=5))
    await first.start()
    await second.start()
    try:
        await asyncio.sleep(3)  # both members joined: the second join rebalances the group
        events = reviews(600)
        await publish_events(kafka, source, events)
        results = await collect(kafka, source + ".out", len(events), within=90)
    finally:
        await first.stop()
        await second.stop()
    consumed = [
        service.registry.get_sample_value("shopstream_echo_events_total", {"status": "consumed"})
        for service in (first, second)
    ]
    assert {r["causation_id"] for r in results} == {str(e.event_id) for e in events}
    assert all(count and count > 0 for count in consumed), f"both members consumed: {consumed}"
    assert sum(c or 0 for c in consumed) >= len(events)
