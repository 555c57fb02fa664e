"""Helpers shared by every test layer.

One real Kafka broker for the tests that need one (integration, and the contract tests in
`tests/contract`): one session fixture here, so a run of both layers starts at most one broker.
Order of preference: `KAFKA_BOOTSTRAP_SERVERS` (an existing cluster), testcontainers' Kafka when a
Docker engine answers, else the project's own local broker from Apache Kafka's jars.
`KAFKA_REQUIRED=1` (set by CI) turns "no broker" into a failure instead of a skip.

`SHOPSTREAM_TEST_BROKER=testcontainers|local` forces one of the last two (testcontainers then
fails when no engine answers instead of falling back); `SHOPSTREAM_KAFKA_IMAGE` names the
image testcontainers runs (default `confluentinc/cp-kafka:7.6.0`; `scripts/containers.sh`
builds a local stand-in under that name where Docker Hub is out of reach, and
`scripts/testcontainers.sh` runs tests through podman's Docker-compatible socket).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopstream.devbroker import LocalBrokerConfig
from shopstream.devbroker import broker as local_broker
from support.ports import broker_port

TEST_PORT = broker_port(92)
TEST_CONTROLLER_PORT = TEST_PORT + 1
DEFAULT_KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"


def _docker_engine_answers() -> bool:
    try:
        import docker  # noqa: PLC0415 - optional, only present with testcontainers

        docker.from_env().ping()
    except Exception:
        return False
    return True


def _unavailable(reason: str) -> None:
    if os.environ.get("KAFKA_REQUIRED") == "1":
        pytest.fail(f"KAFKA_REQUIRED=1 but no Kafka broker is available: {reason}")
    pytest.skip(f"no Kafka broker: {reason}")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    choice = os.environ.get("SHOPSTREAM_TEST_BROKER", "")
    if choice not in {"", "testcontainers", "local"}:
        pytest.fail(f"SHOPSTREAM_TEST_BROKER must be testcontainers or local, not {choice!r}")
    engine = choice != "local" and _docker_engine_answers()
    if choice == "testcontainers" and not engine:
        pytest.fail("SHOPSTREAM_TEST_BROKER=testcontainers but no Docker engine answers")
    if engine:
        from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415

        image = os.environ.get("SHOPSTREAM_KAFKA_IMAGE", DEFAULT_KAFKA_IMAGE)
        with KafkaContainer(image).with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    config = LocalBrokerConfig(
        port=TEST_PORT,
        controller_port=TEST_CONTROLLER_PORT,
        home=Path(tmp_path_factory.mktemp("kafka")),
        jars_home=LocalBrokerConfig().home / "jars",
    )
    try:
        local_broker.ensure_jars(config)
        status = local_broker.start(config)
    except local_broker.LocalBrokerError as error:
        _unavailable(str(error))
        return
    try:
        yield status.bootstrap_servers
    finally:
        local_broker.stop(config)
