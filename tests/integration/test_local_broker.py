"""The local Kafka broker: lifecycle, a real produce/consume round-trip, and port clashes."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shopstream.devbroker import broker as lb
from support.ports import broker_port

pytestmark = pytest.mark.integration

PORT, CONTROLLER_PORT = broker_port(392), broker_port(393)
# Jars live in the default cache so every test run (and the CLI) shares one download.
SHARED_JARS = lb.LocalBrokerConfig().home / "jars"


def _config(
    home: Path, port: int = PORT, controller_port: int = CONTROLLER_PORT
) -> lb.LocalBrokerConfig:
    return lb.LocalBrokerConfig(
        port=port, controller_port=controller_port, home=home, jars_home=SHARED_JARS
    )


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lb.LocalBrokerConfig]:
    config = _config(tmp_path_factory.mktemp("local-kafka"))
    started = lb.start(config)
    assert not started.already_running
    try:
        yield config
    finally:
        lb.stop(config)


def test_start_reports_a_running_broker(broker: lb.LocalBrokerConfig) -> None:
    current = lb.status(broker)
    assert current.running
    assert current.pid is not None
    assert current.bootstrap_servers == f"127.0.0.1:{PORT}"
    assert current.startup_seconds is not None
    assert current.startup_seconds > 0
    assert _accepts(PORT)
    # The listener accepts connections a moment before log4j writes the start-up line.
    deadline = time.monotonic() + 30
    while "Kafka Server started" not in lb.log_path(broker).read_text():
        assert time.monotonic() < deadline, lb.log_path(broker).read_text()
        time.sleep(0.2)


def test_second_start_is_a_no_op(broker: lb.LocalBrokerConfig) -> None:
    before = lb.status(broker)
    again = lb.start(broker)
    assert again.already_running
    assert again.pid == before.pid


async def test_round_trip_on_an_auto_created_topic(broker: lb.LocalBrokerConfig) -> None:
    topic = "local-broker-round-trip"
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        group_id="local-broker-test",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"k", b"hello")


def test_stop_restart_over_a_stale_pid_file_and_reset(broker: lb.LocalBrokerConfig) -> None:
    lb.start(broker)  # no-op when the earlier tests left it running
    assert lb.stop(broker)
    assert not lb.status(broker).running
    assert not _accepts(PORT)
    assert not lb.stop(broker)

    # A pid file naming a process that has exited must not count as a running broker.
    gone = subprocess.Popen(["true"])
    gone.wait()
    broker.pid_file.write_text(f"{gone.pid}\n")
    assert not lb.status(broker).running

    warm = lb.start(broker)
    assert not warm.already_running
    assert warm.pid != gone.pid
    assert lb.status(broker).running

    lb.reset(broker)
    assert not lb.status(broker).running
    assert not broker.data_dir.exists()


@pytest.mark.parametrize("taken", ["client", "controller"])
def test_port_held_by_another_program_is_reported(tmp_path: Path, taken: str) -> None:
    config = _config(tmp_path, port=broker_port(394), controller_port=broker_port(395))
    busy = config.port if taken == "client" else config.controller_port
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", busy))
        listener.listen()
        began = time.monotonic()
        with pytest.raises(lb.PortInUseError, match=str(busy)):
            lb.start(config)
        assert time.monotonic() - began < 5
    assert not lb.status(config).running
