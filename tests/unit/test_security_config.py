"""Security settings without a broker: derived ACLs, broker properties, TLS contexts, redaction."""

from __future__ import annotations

import io
import json
import logging
import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr

from shopstream.acls import (
    Operation,
    PatternType,
    ResourceType,
    acl_bindings,
    load_settings,
    service_access,
)
from shopstream.devbroker.security import BrokerSecurity, ScramUser, format_arguments
from shopstream.devbroker.security import server_properties as secured_properties
from shopstream.echo import EchoSettings, build_echo_service
from shopstream.logs import JsonFormatter, redact
from shopstream.runtime.security import aiokafka_options, faststream_security, ssl_context
from shopstream.services import discover
from shopstream.settings import BatchSettings, KafkaSettings
from shopstream.topics import dead_letter_topic
from shopstream_sentiment.app import build_service as build_sentiment
from shopstream_sentiment.config import SentimentSettings
from support.sentiment import KeywordModel

CA_PEM = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")


def grants(service: str, settings: object) -> set[tuple[str, str, str]]:
    access = service_access(service, settings)  # type: ignore[arg-type]
    return {(b.resource_type.name, b.resource_name, b.operation.name) for b in acl_bindings(access)}


def test_sentiment_reads_its_input_group_and_state_and_writes_outputs_and_dlq() -> None:
    assert grants("sentiment", SentimentSettings()) == {
        ("GROUP", "shopstream-sentiment", "READ"),
        ("TOPIC", "shop.reviews.submitted", "READ"),
        ("TOPIC", "shop.reviews.insights", "READ"),
        ("TOPIC", "shop.reviews.sentiment", "WRITE"),
        ("TOPIC", "shop.reviews.insights", "WRITE"),
        ("TOPIC", "shop.reviews.submitted.dlq", "WRITE"),
    }


def test_every_service_gets_only_literal_topic_and_group_grants_without_create() -> None:
    for service in discover():
        settings = load_settings(service)
        bindings = acl_bindings(service_access(service, settings))
        assert bindings, service
        assert {b.principal for b in bindings} == {f"User:{service}"}
        assert {b.operation for b in bindings} <= {Operation.READ, Operation.WRITE}
        assert {b.resource_type for b in bindings} <= {ResourceType.TOPIC, ResourceType.GROUP}
        assert all(b.pattern is PatternType.LITERAL for b in bindings)
        assert all("*" not in b.resource_name for b in bindings)


def test_recommender_and_responder_read_the_catalogue_outside_their_group() -> None:
    recommender = grants("recommender", load_settings("recommender"))
    assert ("TOPIC", "shop.catalog.products", "READ") in recommender
    assert ("TOPIC", "shop.catalog.products", "WRITE") not in recommender
    responder = load_settings("responder")
    assert ("TOPIC", "shop.catalog.products", "READ") in grants("responder", responder)
    without_facts = responder.model_copy(update={"product_facts": False})
    assert ("TOPIC", "shop.catalog.products", "READ") not in grants("responder", without_facts)


def test_exactly_once_grants_the_transactional_id_as_the_runtime_names_it() -> None:
    per_replica = SentimentSettings(batch=BatchSettings(delivery="exactly_once"))
    [txn] = [
        b
        for b in acl_bindings(service_access("sentiment", per_replica))
        if b.resource_type is ResourceType.TRANSACTIONAL_ID
    ]
    # The runtime appends the hostname, so each replica's id shares the group's prefix.
    assert (txn.resource_name, txn.pattern, txn.operation) == (
        "shopstream-sentiment-",
        PatternType.PREFIXED,
        Operation.WRITE,
    )
    fixed = SentimentSettings(
        batch=BatchSettings(delivery="exactly_once", transactional_id="sentiment-0")
    )
    [txn] = [
        b
        for b in acl_bindings(service_access("sentiment", fixed))
        if b.resource_type is ResourceType.TRANSACTIONAL_ID
    ]
    assert (txn.resource_name, txn.pattern) == ("sentiment-0", PatternType.LITERAL)


def test_principal_follows_the_sasl_username_and_group_the_settings() -> None:
    settings = EchoSettings(
        kafka=KafkaSettings(sasl_username="echo-prod"), group_id="g1", input_topic="a"
    )
    access = service_access("echo", settings)
    assert access.principal == "User:echo-prod"
    assert access.group_id == "g1"
    assert ("TOPIC", dead_letter_topic("a"), "WRITE") in grants("echo", settings)


@pytest.mark.parametrize("service", ["sentiment", "echo"])
def test_grants_cover_every_topic_the_service_declares(service: str) -> None:
    # A new input or output in a service without a matching grant would fail only in a
    # secured deployment; this catches the drift for the services cheap to build here.
    if service == "sentiment":
        settings: EchoSettings | SentimentSettings = SentimentSettings()
        declared = build_sentiment(settings, model=KeywordModel())._topics
    else:
        settings = EchoSettings()
        declared = build_echo_service(settings)._topics
    granted = {name for _, name, _ in grants(service, settings)}
    assert set(declared) <= granted


def test_secured_broker_properties_deny_by_default_and_keep_the_controller_local() -> None:
    security = BrokerSecurity(admin=ScramUser("admin", "s3cret"), users=(ScramUser("echo", "e"),))
    text = secured_properties(security, 9092, 9093, None)
    lines = dict(line.split("=", 1) for line in text.splitlines())
    assert lines["listeners"] == "SASL_PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert lines["authorizer.class.name"].endswith("StandardAuthorizer")
    assert lines["allow.everyone.if.no.acl.found"] == "false"
    assert lines["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert lines["super.users"] == "User:admin;User:ANONYMOUS"
    assert format_arguments(security) == [
        "--add-scram",
        "SCRAM-SHA-512=[name=admin,password=s3cret]",
        "--add-scram",
        "SCRAM-SHA-512=[name=echo,password=e]",
    ]


def test_scram_passwords_stay_out_of_reprs_and_errors() -> None:
    user = ScramUser("echo", "hunter2-secret")
    assert "hunter2" not in repr(user)
    assert "hunter2" not in repr(BrokerSecurity(admin=user))
    with pytest.raises(ValueError, match="letters") as error:
        ScramUser("echo", "bad]password,with=syntax")
    assert "bad]password" not in str(error.value)
    settings = KafkaSettings(sasl_username="echo", sasl_password=SecretStr("hunter2-secret"))
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in settings.model_dump_json()


def test_sasl_ssl_settings_build_a_verifying_tls_context() -> None:
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_username="echo",
        sasl_password=SecretStr("pw"),
        ssl_cafile=CA_PEM,
    )
    context = ssl_context(settings)
    assert context is not None
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    options = aiokafka_options(settings)
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert faststream_security(settings) is not None
    assert ssl_context(KafkaSettings(security_protocol="SASL_PLAINTEXT")) is None
    with pytest.raises(ValueError, match="sasl_username"):
        aiokafka_options(KafkaSettings(security_protocol="SASL_SSL"))


def test_json_logs_redact_emails_and_phone_numbers_everywhere() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("cannot reach jane.doe@example.com")
        except ValueError:
            logger.exception(
                "customer +44 20 7946 0958 wrote from jane.doe@example.com",
                extra={"contact": "call 0049 30 1234567 or mail a.b+c@shop.example.org"},
            )
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    document = json.loads(line)
    for secret in ("jane.doe@example.com", "7946", "1234567", "a.b+c@shop.example.org"):
        assert secret not in line
    assert document["msg"] == "customer <phone> wrote from <email>"
    assert document["contact"] == "call <phone> or mail <email>"
    assert "<email>" in document["exc"]


def test_redaction_keeps_broker_addresses() -> None:
    line = "Failed to acquire PID from broker 127.0.0.1:19692/1; call +44 20 7946 0958"
    assert redact(line) == "Failed to acquire PID from broker 127.0.0.1:19692/1; call <phone>"
