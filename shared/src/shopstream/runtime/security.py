"""Translate `KafkaSettings` into what aiokafka and FastStream expect, keeping secrets wrapped."""

from __future__ import annotations

import ssl
from typing import Any

from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from shopstream.settings import KafkaSettings


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(
        cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
    )
    if settings.ssl_certfile:
        password = settings.ssl_keyfile_password
        context.load_cert_chain(
            str(settings.ssl_certfile),
            str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
            password.get_secret_value() if password else None,
        )
    return context


def _sasl_credentials(settings: KafkaSettings) -> tuple[str, str]:
    if settings.sasl_username is None or settings.sasl_password is None:
        raise ValueError("SASL needs kafka.sasl_username and kafka.sasl_password")
    return settings.sasl_username, settings.sasl_password.get_secret_value()


def faststream_security(settings: KafkaSettings) -> BaseSecurity | None:
    context = ssl_context(settings)
    if settings.security_protocol in ("PLAINTEXT", "SSL"):
        return BaseSecurity(ssl_context=context) if context else None
    username, password = _sasl_credentials(settings)
    use_ssl = settings.security_protocol == "SASL_SSL"
    mechanisms: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    return mechanisms[settings.sasl_mechanism](
        username, password, ssl_context=context, use_ssl=use_ssl
    )


def aiokafka_options(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients (producer, consumer, admin)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
        "request_timeout_ms": settings.request_timeout_ms,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        username, password = _sasl_credentials(settings)
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = username
        options["sasl_plain_password"] = password
    return options


def librdkafka_options(settings: KafkaSettings) -> dict[str, str | int]:
    """librdkafka properties (confluent-kafka clients) for the same settings. librdkafka reads
    certificates from files, so an SSL connection names them instead of building a context."""
    options: dict[str, str | int] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.security_protocol.lower(),
        "socket.timeout.ms": settings.request_timeout_ms,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        files = {
            "ssl.ca.location": settings.ssl_cafile,
            "ssl.certificate.location": settings.ssl_certfile,
            "ssl.key.location": settings.ssl_keyfile,
        }
        options.update({name: str(path) for name, path in files.items() if path is not None})
        if settings.ssl_keyfile_password is not None:
            options["ssl.key.password"] = settings.ssl_keyfile_password.get_secret_value()
    if settings.security_protocol.startswith("SASL"):
        username, password = _sasl_credentials(settings)
        options["sasl.mechanism"] = settings.sasl_mechanism
        options["sasl.username"] = username
        options["sasl.password"] = password
    return options
