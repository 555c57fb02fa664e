"""Fault suite: the echo service under steady load while the broker or the model misbehaves.

Each scenario runs against its own broker (the shared test broker must not be disturbed), is
bounded in events and time, and checks that every input has a result and that any duplicate
result carries the same event id as its twin. Figures go to `bench/results/faults.json` and
`docs/reliability.md`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from shopstream import local_broker
from shopstream.events import ReviewSubmitted
from shopstream.kafka_io import publish_events
from shopstream.local_broker import LocalBrokerConfig
from shopstream.runtime.admin import ensure_topics
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings, dead_letter_topic
from support.figures import record
from support.kafka import collect, unique
from support.ports import broker_port

pytestmark = pytest.mark.integration

EVENTS = 1_500


@pytest.fixture
async def fault_broker(tmp_path: Path) -> AsyncIterator[LocalBrokerConfig]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("fault scenarios control their own broker; an external cluster is in use")
    config = LocalBrokerConfig(
        port=broker_port(692),
        controller_port=broker_port(693),
        home=tmp_path / "kafka",
        jars_home=LocalBrokerConfig().home / "jars",
    )
    local_broker.start(config)
    try:
        yield config
    finally:
        local_broker.stop(config)


def reviews(count: int) -> list[ReviewSubmitted]:
    return [
        ReviewSubmitted(
            tenant_id="acme",
            payload={"review_id": f"r{i}", "product_id": f"p{i % 9}", "text": f"review {i}"},
        )
        for i in range(count)
    ]


def start_echo(bootstrap: str, source: str, **extra_env: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ECHO_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "ECHO_INPUT_TOPIC": source,
        "ECHO_OUTPUT_TOPIC": source + ".out",
        "ECHO_GROUP_ID": source + ".group",
        "ECHO_HTTP_PORT": "0",
        "ECHO_DELAY_MS": "20",
        "ECHO_BATCH__MAX_RECORDS": "50",
        "ECHO_BATCH__SESSION_TIMEOUT_MS": "6000",
        "ECHO_BATCH__HEARTBEAT_INTERVAL_MS": "1000",
        **extra_env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "shopstream.cli", "run", "echo"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def run_scenario(
    name: str,
    config: LocalBrokerConfig,
    fault: Callable[[LocalBrokerConfig], Awaitable[None]],
    **extra_env: str,
) -> dict[str, float]:
    kafka = KafkaSettings(bootstrap_servers=config.bootstrap_servers)
    source = unique(f"fault.{name}")
    await ensure_topics(kafka, TopicSettings(partitions=3).specs((source, source + ".out")))
    events = reviews(EVENTS)
    wanted = {str(event.event_id) for event in events}
    process = start_echo(config.bootstrap_servers, source, **extra_env)
    try:
        # Steady load: the first half, then the fault while the second half arrives.
        await publish_events(kafka, source, events[: EVENTS // 2])
        await collect(kafka, source + ".out", EVENTS // 4, within=60)
        fault_started = time.monotonic()
        producer = asyncio.create_task(publish_events(kafka, source, events[EVENTS // 2 :]))
        await fault(config)
        await asyncio.wait_for(producer, timeout=120)
        results: list[dict[str, object]] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            results = await collect(kafka, source + ".out", 10**9, within=3)
            if {r["causation_id"] for r in results} >= wanted:
                break
        recovery = time.monotonic() - fault_started
        dead = await collect(kafka, dead_letter_topic(source), 10**9, within=2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    ids: dict[object, set[object]] = {}
    for result in results:
        ids.setdefault(result["causation_id"], set()).add(result["event_id"])
    assert set(ids) == wanted, f"{name}: {len(wanted - set(ids))} inputs without a result"
    assert all(len(twins) == 1 for twins in ids.values()), f"{name}: a duplicate has a new id"
    assert dead == [], f"{name}: infrastructure faults must not dead-letter good records"
    figures = {
        "inputs": len(events),
        "results": len(results),
        "dead_letters": len(dead),
        "duplicates": len(results) - len(ids),
        "recovery_seconds": round(recovery, 1),
    }
    record(name, figures)
    return figures


async def test_broker_restart_mid_stream(fault_broker: LocalBrokerConfig) -> None:
    async def restart(config: LocalBrokerConfig) -> None:
        await asyncio.to_thread(local_broker.stop, config)
        await asyncio.sleep(2)
        await asyncio.to_thread(local_broker.start, config)

    await run_scenario("broker_restart", fault_broker, restart)


async def test_broker_frozen_longer_than_the_session_timeout(
    fault_broker: LocalBrokerConfig,
) -> None:
    async def freeze(config: LocalBrokerConfig) -> None:
        pid = local_broker.status(config).pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(10)  # session timeout is 6 s
        finally:
            os.kill(pid, signal.SIGCONT)

    await run_scenario("broker_sigstop_10s", fault_broker, freeze)


async def test_model_slower_than_the_poll_interval(fault_broker: LocalBrokerConfig) -> None:
    async def nothing(config: LocalBrokerConfig) -> None:
        await asyncio.sleep(0)

    # Each batch takes 5 s against a 2 s poll interval. Whether or not the group evicts the
    # member mid-batch (its commit would then fail and the batch be redelivered), no input may
    # be lost and a duplicate must keep its id.
    await run_scenario(
        "model_slower_than_poll_interval",
        fault_broker,
        nothing,
        ECHO_DELAY_MS="5000",
        ECHO_BATCH__MAX_RECORDS="400",
        ECHO_BATCH__MAX_POLL_INTERVAL_MS="2000",
    )
