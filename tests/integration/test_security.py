"""SASL/SCRAM, ACLs and TLS on a real broker: who is refused, and that services still work.

The broker runs with `StandardAuthorizer` and no ACL for anyone but the admin super user; every
service principal gets exactly the ACLs `shopstream.acls` derives from its settings.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr

from shopstream.acls import acl_bindings, service_access
from shopstream.devbroker import BrokerSecurity, LocalBrokerConfig, ScramUser
from shopstream.devbroker import broker as local_broker
from shopstream.echo import EchoSettings, build_echo_service
from shopstream.events import CopyRequested, QuestionAsked, ReviewSubmitted
from shopstream.kafka_io import publish_events
from shopstream.runtime.acl_admin import create_acls
from shopstream.runtime.admin import ensure_topics
from shopstream.runtime.security import aiokafka_options
from shopstream.services import service_spec
from shopstream.settings import KafkaSettings, ServiceSettings, ShopstreamSettings
from shopstream.topics import TopicSettings, dead_letter_topic
from shopstream_describer.app import ProductTable
from shopstream_describer.app import build_service as build_describer
from shopstream_describer.config import DescriberSettings
from shopstream_recommender.app import build_service as build_recommender
from shopstream_recommender.config import RecommenderSettings
from shopstream_responder.app import build_service as build_responder
from shopstream_responder.config import ResponderSettings
from shopstream_sentiment.app import build_service as build_sentiment
from shopstream_sentiment.config import SentimentSettings
from support.kafka import collect, unique
from support.ports import broker_port
from support.recommender import FakeEmbedder, activity, request, upsert
from support.replicas import product_events
from support.responder import NORTH, hashing_model, knowledge_events
from support.sentiment import KeywordModel

pytestmark = pytest.mark.integration

SHARED_JARS = LocalBrokerConfig().home / "jars"
ADMIN = ScramUser("admin", secrets.token_urlsafe(16))
ECHO = ScramUser("echo", secrets.token_urlsafe(16))
SENTIMENT = ScramUser("sentiment", secrets.token_urlsafe(16))
RESPONDER = ScramUser("responder", secrets.token_urlsafe(16))
RECOMMENDER = ScramUser("recommender", secrets.token_urlsafe(16))
DESCRIBER = ScramUser("describer", secrets.token_urlsafe(16))
EMAIL, PHONE = "jane.doe@example.com", "+44 20 7946 0958"


def _start(config: LocalBrokerConfig) -> None:
    try:
        local_broker.ensure_jars(config)
        local_broker.start(config)
    except local_broker.LocalBrokerError as error:
        if os.environ.get("KAFKA_REQUIRED") == "1":
            pytest.fail(f"KAFKA_REQUIRED=1 but the secured local broker failed: {error}")
        pytest.skip(f"no local Kafka broker: {error}")


def _broker(home: Path, offset: int, *, tls: bool) -> LocalBrokerConfig:
    return LocalBrokerConfig(
        port=broker_port(offset),
        controller_port=broker_port(offset + 1),
        home=home,
        jars_home=SHARED_JARS,
        security=BrokerSecurity(
            admin=ADMIN, users=(ECHO, SENTIMENT, RESPONDER, RECOMMENDER, DESCRIBER), tls=tls
        ),
    )


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBrokerConfig]:
    config = _broker(tmp_path_factory.mktemp("kafka-sasl"), 800, tls=False)
    _start(config)
    try:
        yield config
    finally:
        local_broker.stop(config)


def reviews(count: int, text: str = "fine") -> list[ReviewSubmitted]:
    return [
        ReviewSubmitted(
            tenant_id="acme",
            payload={"review_id": f"r{i}", "product_id": f"p{i % 3}", "text": f"{text} {i}"},
        )
        for i in range(count)
    ]


async def create_topics(
    admin: KafkaSettings, *names: str, partitions: int = 1, compacted: Sequence[str] = ()
) -> None:
    layout = TopicSettings(partitions=partitions)
    await ensure_topics(admin, [layout.spec(name, compacted=name in compacted) for name in names])


async def grant(admin: KafkaSettings, service: str, settings: ServiceSettings) -> None:
    await create_acls(admin, acl_bindings(service_access(service, settings)))


async def provision(
    admin: KafkaSettings, service: str, settings: ServiceSettings, *, partitions: int = 1
) -> None:
    """Create the topics the service's spec declares for `settings` (its inputs' dead-letter
    topics and its compacted tables too), as an operator would, and grant its principal what
    `shopstream.acls` derives from them."""
    use = service_spec(service).topic_use(settings)
    dead_letters = [dead_letter_topic(topic) for topic in use.consumes]
    names = dict.fromkeys([*use.consumes, *use.produces, *use.loads, *dead_letters])
    await create_topics(admin, *names, partitions=partitions, compacted=tuple(use.compacted))
    await grant(admin, service, settings)


def topic_env(prefix: str, *names: str) -> dict[str, str]:
    """`TOPICS__<NAME>` settings naming each of the service's topics `<prefix>.<name>`."""
    return {f"TOPICS__{name.upper()}": f"{prefix}.{name}" for name in names}


def run_as(
    monkeypatch: pytest.MonkeyPatch,
    broker: LocalBrokerConfig,
    service_prefix: str,
    user: ScramUser,
    **settings: str,
) -> None:
    """Configure a service through its environment alone, as a pod would be: the SASL
    listener, its own SCRAM principal, no HTTP port, and `settings` (without the prefix)."""
    environment = {
        "KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA__SASL_USERNAME": user.name,
        "KAFKA__SASL_PASSWORD": user.password,
        "HTTP_PORT": "0",
        **settings,
    }
    for name, value in environment.items():
        monkeypatch.setenv(service_prefix + name, value)


async def publish_raw(settings: KafkaSettings, topic: str, value: bytes, key: bytes) -> None:
    producer = AIOKafkaProducer(**aiokafka_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _connect(settings: KafkaSettings) -> None:
    producer = AIOKafkaProducer(**aiokafka_options(settings))
    try:
        await producer.start()
    finally:
        await producer.stop()


@pytest.mark.parametrize("who", ["no credentials", "wrong password", "unknown user"])
async def test_clients_without_valid_credentials_are_refused(
    sasl_broker: LocalBrokerConfig, who: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = sasl_broker.kafka_settings(ECHO)
    bad = {
        "no credentials": KafkaSettings(bootstrap_servers=good.bootstrap_servers),
        "wrong password": good.model_copy(update={"sasl_password": SecretStr("not-it")}),
        "unknown user": good.model_copy(update={"sasl_username": "mallory"}),
    }[who].model_copy(update={"request_timeout_ms": 5_000})
    started = time.monotonic()
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(_connect(bad), timeout=30)
    reasons = " ".join(record.getMessage() for record in caplog.records)
    if who == "no credentials":  # a plaintext request on a SASL listener: the broker hangs up
        assert "closed" in reasons
    else:
        assert "SaslAuthenticationFailed" in reasons
    assert time.monotonic() - started < 30
    await _connect(good)  # the same listener accepts the right password


async def test_a_service_principal_is_held_to_its_own_topics(
    sasl_broker: LocalBrokerConfig,
) -> None:
    admin = sasl_broker.kafka_settings()
    source = unique("sec.own")
    foreign = unique("sec.foreign")
    settings = EchoSettings(
        kafka=sasl_broker.kafka_settings(ECHO),
        input_topic=source,
        output_topic=source + ".out",
        group_id=source + ".group",
    )
    await create_topics(admin, source, source + ".out", dead_letter_topic(source), foreign)
    await grant(admin, "echo", settings)

    producer = AIOKafkaProducer(**aiokafka_options(settings.kafka), enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(source + ".out", b"allowed")  # its own output
        await producer.send_and_wait(dead_letter_topic(source), b"allowed")  # its DLQ
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(foreign, b"refused")
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(source, b"refused: only the upstream writes the input")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        source, **aiokafka_options(settings.kafka), group_id="someone-elses-group"
    )
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await asyncio.wait_for(consumer.start(), timeout=30)
    finally:
        await consumer.stop()


def _echo_env(config: LocalBrokerConfig, settings: EchoSettings) -> dict[str, str]:
    """Everything through the environment, as a deployment would configure it."""
    kafka = settings.kafka
    assert kafka.sasl_password is not None
    return {
        **os.environ,
        "ECHO_KAFKA__BOOTSTRAP_SERVERS": config.bootstrap_servers,
        "ECHO_KAFKA__CLIENT": kafka.client,
        "ECHO_KAFKA__SECURITY_PROTOCOL": kafka.security_protocol,
        "ECHO_KAFKA__SASL_MECHANISM": kafka.sasl_mechanism,
        "ECHO_KAFKA__SASL_USERNAME": str(kafka.sasl_username),
        "ECHO_KAFKA__SASL_PASSWORD": kafka.sasl_password.get_secret_value(),
        "ECHO_CREATE_TOPICS": "false",
        "ECHO_INPUT_TOPIC": settings.input_topic,
        "ECHO_OUTPUT_TOPIC": settings.output_topic,
        "ECHO_GROUP_ID": str(settings.group_id),
        "ECHO_BATCH__DELIVERY": settings.batch.delivery,
        "ECHO_HTTP_PORT": "0",
        # The chattiest level: secrets and customer data must stay out even here.
        "ECHO_LOG_LEVEL": "DEBUG",
        "ECHO_BATCH__SESSION_TIMEOUT_MS": "6000",
        "ECHO_BATCH__HEARTBEAT_INTERVAL_MS": "1000",
    }


def _launch(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "shopstream.cli", "run", "echo"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status), response.read().decode()


def _wait_for_http_port(log: Path, process: subprocess.Popen[bytes], within: float) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if '"service ready"' in line:
                return int(json.loads(line)["http_port"])
        if process.poll() is not None:
            raise AssertionError(f"echo exited early:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(
        f"echo not ready in {within} s:\n{log.read_text(errors='replace')[-3000:]}"
    )


@pytest.mark.parametrize("client", ["aiokafka", "confluent"])
async def test_echo_runs_under_its_own_principal_with_secrets_and_pii_kept_out_of_logs(
    sasl_broker: LocalBrokerConfig, tmp_path: Path, client: str
) -> None:
    admin = sasl_broker.kafka_settings()
    source = unique("sec.echo")
    settings = EchoSettings(
        kafka=sasl_broker.kafka_settings(ECHO).model_copy(update={"client": client}),
        input_topic=source,
        output_topic=source + ".out",
        group_id=source + ".group",
        batch={"delivery": "exactly_once"},  # also proves the transactional-id ACL
    )
    await create_topics(admin, source, source + ".out", dead_letter_topic(source), partitions=2)
    environment = _echo_env(sasl_broker, settings)
    # The grants go through the documented CLI, fed the same ECHO_* environment as the service.
    assert admin.sasl_password is not None
    admin_env = {
        "SHOPSTREAM_KAFKA__BOOTSTRAP_SERVERS": admin.bootstrap_servers,
        "SHOPSTREAM_KAFKA__SECURITY_PROTOCOL": admin.security_protocol,
        "SHOPSTREAM_KAFKA__SASL_USERNAME": str(admin.sasl_username),
        "SHOPSTREAM_KAFKA__SASL_PASSWORD": admin.sasl_password.get_secret_value(),
    }
    applied = await asyncio.to_thread(_cli, {**environment, **admin_env}, "acls", "apply", "echo")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "TRANSACTIONAL_ID" in applied.stdout
    assert ADMIN.password not in applied.stdout + applied.stderr
    events = reviews(20, text=f"write to {EMAIL} or call {PHONE}")
    await publish_events(admin, source, events)
    # Not an event: dead-lettered, which exercises the DLQ grant and the warning log line.
    await publish_raw(admin, source, f"not json, from {EMAIL}".encode(), key=b"acme:x")

    log = tmp_path / "echo.log"
    process = _launch(environment, log)
    try:
        port = await asyncio.to_thread(_wait_for_http_port, log, process, 60)
        results = await collect(admin, source + ".out", len(events), within=60, read_committed=True)
        dead = await collect(admin, dead_letter_topic(source), 1, within=30, read_committed=True)
        ready, _ = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/health/ready")
        _, metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert ready == 200
    assert process.returncode == 0
    assert {r["causation_id"] for r in results} == {str(e.event_id) for e in events}
    assert len(dead) == 1
    output = log.read_text(errors="replace")
    assert "service ready" in output
    assert "dead-lettered a record" in output
    assert "shopstream_echo_dead_letters_total" in metrics
    password = ECHO.password
    assert password not in output, "the SASL password leaked into the service's logs"
    assert password not in metrics, "the SASL password leaked into /metrics"
    broker_log = local_broker.log_path(sasl_broker).read_text(errors="replace")
    assert password not in broker_log
    assert ADMIN.password not in broker_log
    assert EMAIL not in output, "a customer's e-mail address in the logs"
    assert PHONE not in output, "a customer's phone number in the logs"


async def test_sentiment_runs_under_least_privilege_from_its_environment(
    sasl_broker: LocalBrokerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = sasl_broker.kafka_settings()
    prefix = unique("sec.sentiment")
    run_as(
        monkeypatch,
        sasl_broker,
        "SENTIMENT_",
        SENTIMENT,
        # Left at its default: the registry's other topics are refused to it, its own exist.
        CREATE_TOPICS="true",
        **topic_env(prefix, "reviews", "sentiment", "insights"),
        TOPICS__PARTITIONS="2",
        GROUP_ID=f"{prefix}.group",
    )
    settings = SentimentSettings()
    topics = settings.topics
    await provision(admin, "sentiment", settings, partitions=2)
    events = reviews(6)
    await publish_events(admin, topics.reviews, events)
    # Something to restore on start, so the start-up read of its own state needs the Read grant.
    await publish_raw(admin, topics.insights, b"{}", key=b"acme:p0")
    service = build_sentiment(settings, model=KeywordModel())
    await service.start()  # restores insights from its own compacted topic first
    try:
        scored = await collect(admin, topics.sentiment, len(events), within=60)
        insights = await collect(admin, topics.insights, 1, within=30)
    finally:
        await service.stop()
    assert {r["causation_id"] for r in scored} == {str(e.event_id) for e in events}
    assert insights


async def test_responder_reads_its_knowledge_tables_under_least_privilege(
    sasl_broker: LocalBrokerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The knowledge and catalogue topics are read outside any consumer group, from the
    # beginning, by every replica: the derived grants must cover that as well as the group.
    admin = sasl_broker.kafka_settings()
    prefix = unique("sec.responder")
    run_as(
        monkeypatch,
        sasl_broker,
        "RESPONDER_",
        RESPONDER,
        CREATE_TOPICS="false",
        **topic_env(prefix, "questions", "answers", "knowledge_gaps", "knowledge", "products"),
        GROUP_ID=f"{prefix}.group",
    )
    settings = ResponderSettings()
    topics = settings.topics
    await provision(admin, "responder", settings)
    await publish_events(admin, topics.knowledge, knowledge_events())
    questions = [
        QuestionAsked(
            tenant_id=NORTH,
            payload={
                "conversation_id": f"c{number}",
                "text": "How many days do I have to return an item?",
            },
        )
        for number in range(3)
    ]
    await publish_events(admin, topics.questions, questions)
    # A stand-in encoder: the test is about access rights, not answer quality.
    service = build_responder(settings, model=hashing_model())
    await service.start()  # reads the knowledge topic to its end before consuming questions
    try:
        answers = await collect(admin, topics.answers, len(questions), within=60)
    finally:
        await service.stop()
    assert {a["causation_id"] for a in answers} == {str(q.event_id) for q in questions}
    # Answered from the knowledge it read under its own principal, not handed off for lack of it.
    assert all(a["payload"]["citations"] for a in answers), answers
    assert all("30 days" in (a["payload"]["answer"] or "") for a in answers), answers


async def test_recommender_replays_and_follows_under_least_privilege(
    sasl_broker: LocalBrokerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On start it replays its group's activity up to the committed offsets and reads the
    # catalogue outside the group: both must work with the derived grants alone.
    admin = sasl_broker.kafka_settings()
    prefix = unique("sec.recommender")
    run_as(
        monkeypatch,
        sasl_broker,
        "RECOMMENDER_",
        RECOMMENDER,
        CREATE_TOPICS="false",
        **topic_env(prefix, "activity", "recs_requests", "recs_results", "products"),
        GROUP_ID=f"{prefix}.group",
    )
    settings = RecommenderSettings()
    topics = settings.topics
    await provision(admin, "recommender", settings)
    products = [upsert("p1", "Red Dress"), upsert("p2", "Blue Dress"), upsert("p3", "Tea Kettle")]
    await publish_events(admin, topics.products, products)
    await publish_events(admin, topics.activity, [activity("u1", "p1"), activity("u1", "p3")])
    asked = [request("u1"), request("u2")]
    await publish_events(admin, topics.recs_requests, asked)
    service = build_recommender(settings, embedder=FakeEmbedder())
    await service.start()
    try:
        results = await collect(admin, topics.recs_results, len(asked), within=60)
    finally:
        await service.stop()
    assert {r["causation_id"] for r in results} == {str(e.event_id) for e in asked}
    shopper = next(r for r in results if r["causation_id"] == str(asked[0].event_id))
    payload = shopper["payload"]
    # The replayed activity makes u1 a known shopper; the reasons name products by the titles
    # the catalogue (read under its own principal) holds.
    assert not payload["cold_start"], payload
    assert {item["product_id"] for item in payload["items"]} <= {"p1", "p2", "p3"}
    reasons = " ".join(item["reason"] for item in payload["items"])
    assert "Red Dress" in reasons or "Tea Kettle" in reasons, payload


async def test_describer_follows_its_product_table_under_least_privilege(
    sasl_broker: LocalBrokerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Products are both its group's input and a table it reads in full (copy requests look
    # products up in it); its own descriptions topic is read back at start for the hashes.
    admin = sasl_broker.kafka_settings()
    prefix = unique("sec.describer")
    run_as(
        monkeypatch,
        sasl_broker,
        "DESCRIBER_",
        DESCRIBER,
        CREATE_TOPICS="false",
        # The composer alone: the test is about access rights, not generation.
        MODEL__GENERATOR="none",
        **topic_env(prefix, "products", "copy_requests", "descriptions", "copies"),
        GROUP_ID=f"{prefix}.group",
    )
    settings = DescriberSettings()
    assert settings.model is None or not settings.model.generator
    topics = settings.topics
    await provision(admin, "describer", settings)
    [product] = product_events(1)  # acme's "Canvas Tote Bag 0", bag-0, navy canvas
    await publish_events(admin, topics.products, [product])
    request = CopyRequested(
        tenant_id="acme",
        payload={"campaign_id": "spring", "product_ids": ["bag-0"], "channel": "sms"},
    )
    service = build_describer(settings)
    await service.start()
    try:
        described = await collect(admin, topics.descriptions, 1, within=60)
        await publish_events(admin, topics.copy_requests, [request])
        copies = await collect(admin, topics.copies, 1, within=60)
    finally:
        await service.stop()
    assert described[0]["payload"]["product_id"] == "bag-0"
    assert "Navy" in described[0]["payload"]["description"]
    assert copies[0]["causation_id"] == str(request.event_id)
    # A restart reads its own descriptions back for their hashes (an invisible topic would only
    # be logged as missing, and every product described again).
    restarted = build_describer(settings)
    await restarted.start()
    try:
        hashes = dict(restarted.component(ProductTable).state.hashes)
    finally:
        await restarted.stop()
    assert ("acme", "bag-0", "en") in hashes, hashes


def _cli(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopstream.cli", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _read_env_file(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


async def test_broker_up_sasl_tls_serves_a_service_and_refuses_an_untrusted_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The documented path: `broker up --sasl --tls`, then everything from its client.env.
    cache = tmp_path / "cache"
    (cache / "local-kafka").mkdir(parents=True)
    SHARED_JARS.mkdir(parents=True, exist_ok=True)
    (cache / "local-kafka" / "jars").symlink_to(SHARED_JARS, target_is_directory=True)
    port = broker_port(802)
    ports = ("--port", str(port), "--controller-port", str(port + 1))
    cli_env = {**os.environ, "SHOPSTREAM_CACHE": str(cache)}
    started = time.monotonic()
    up = await asyncio.to_thread(_cli, cli_env, "broker", "up", *ports, "--sasl", "--tls")
    startup = time.monotonic() - started
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        client_env = cache / "local-kafka" / str(port) / "client.env"
        assert client_env.stat().st_mode & 0o077 == 0, "client.env must be private"
        for name, value in _read_env_file(client_env).items():
            monkeypatch.setenv(name, value)
        admin = ShopstreamSettings().kafka
        assert admin.security_protocol == "SASL_SSL"
        untrusted = admin.model_copy(update={"ssl_cafile": None, "request_timeout_ms": 5_000})
        with pytest.raises(KafkaConnectionError):  # the system CAs do not vouch for it
            await asyncio.wait_for(_connect(untrusted), timeout=30)
        source = unique("sec.tls")
        monkeypatch.setenv("ECHO_INPUT_TOPIC", source)
        monkeypatch.setenv("ECHO_OUTPUT_TOPIC", source + ".out")
        monkeypatch.setenv("ECHO_GROUP_ID", source + ".group")
        monkeypatch.setenv("ECHO_HTTP_PORT", "0")
        settings = EchoSettings()
        assert settings.kafka.sasl_username == "echo"
        assert not settings.create_topics
        await create_topics(admin, source, source + ".out", dead_letter_topic(source))
        events = reviews(5)
        await publish_events(admin, source, events)
        # The same settings on both clients (librdkafka reads the CA from its file), each in
        # its own group, so the second reads the inputs again and doubles the results.
        for runs, client in enumerate(("aiokafka", "confluent"), start=1):
            client_settings = settings.model_copy(
                update={
                    "group_id": f"{source}.{client}",
                    "kafka": settings.kafka.model_copy(update={"client": client}),
                }
            )
            await grant(admin, "echo", client_settings)
            service = build_echo_service(client_settings)
            await service.start()
            try:
                results = await collect(admin, source + ".out", len(events) * runs, within=60)
            finally:
                await service.stop()
            assert len(results) == len(events) * runs, client
            by_input = {r["causation_id"] for r in results}
            assert by_input == {str(e.event_id) for e in events}, client
    finally:
        await asyncio.to_thread(_cli, cli_env, "broker", "down", *ports)
    assert startup < 90
