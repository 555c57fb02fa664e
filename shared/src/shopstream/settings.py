"""Settings shared by every service: how to reach Kafka, how to batch, where topics live.

Every service reads its own environment prefix (`SENTIMENT_`, `DESCRIBER_`, ...) with nested
fields joined by `__`, e.g. `SENTIMENT_KAFKA__BOOTSTRAP_SERVERS`. The CLI reads `SHOPSTREAM_`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shopstream.topics import TopicSettings


class KafkaSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated host:port list of the brokers to bootstrap from."""
    client_id: str | None = None
    """Client id shown in broker logs and quotas; defaults to the service name."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    """Used only with a SASL security protocol."""
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    """CA bundle that signed the brokers' certificates (SSL and SASL_SSL)."""
    ssl_certfile: Path | None = None
    """Client certificate for mutual TLS."""
    ssl_keyfile: Path | None = None
    ssl_keyfile_password: SecretStr | None = None
    request_timeout_ms: int = Field(default=40_000, ge=1_000)
    client: Literal["aiokafka", "confluent"] = "confluent"
    """The Kafka client a service consumes and publishes with: `confluent` (confluent-kafka,
    librdkafka in C; the default, because the runtime drains 1.4-1.9 times the events/s on it,
    at less CPU per event: see the bus benchmark) or `aiokafka` (pure Python, which FastStream's
    in-memory test broker drives). Both give the same guarantees and pass the same fault and
    security tests; admin, tables and tools use aiokafka either way."""


class BatchSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_records: int = Field(default=64, ge=1, le=100_000)
    """Largest batch handed to the model at once."""
    batch_timeout_ms: int = Field(default=5, ge=1, le=60_000)
    """How long a poll waits to fill a batch before handing over what it has. librdkafka's
    `consume` waits this long for a *full* batch (aiokafka returns what has arrived), so on the
    default client it is a floor under latency at a steady rate: at 2,000 events/s the bus
    benchmark's p99 was 34 ms at 5, 55 ms at 20. A backlog fills batches either way."""
    max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    """Upper bound on one batch's processing time before the group evicts this member;
    size it for the slowest batch the model can take."""
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    """Where a new consumer group starts; `earliest` so no event published before the first
    deployment is skipped."""
    delivery: Literal["at_least_once", "exactly_once"] = "at_least_once"
    """`exactly_once` wraps each batch's results and its consumed offsets in one Kafka
    transaction; downstream consumers must read with isolation level `read_committed`."""
    transactional_id: str | None = None
    """Stable per replica in exactly-once mode (defaults to `<group>-<hostname>`), so a restarted
    replica fences its predecessor and aborts its open transaction at once."""
    transaction_timeout_ms: int = Field(default=15_000, ge=1_000, le=900_000)
    transaction_span_ms: int = Field(default=100, ge=0, le=60_000)
    """Exactly once on confluent-kafka: how long one transaction may stay open across batches
    that come full (a backlog) before it commits. A batch that is not full (the consumer has
    caught up) commits at once, so at a steady rate every batch is still its own transaction
    and latency is what it was; in a backlog the coordinator's round trips are paid once per
    span, not once per batch (Kafka Streams commits exactly-once work every 100 ms too). 0:
    one transaction per batch."""
    linger_ms: int | None = Field(default=None, ge=0, le=1_000)
    """Producer linger; None picks the client's own (`producer_linger_ms`). A batch's results
    are published together and then waited for, so the linger only decides how they are cut
    into requests, not when the last one leaves."""

    @model_validator(mode="after")
    def _span_inside_transaction_timeout(self) -> Self:
        if self.transaction_span_ms >= self.transaction_timeout_ms:
            raise ValueError("transaction_span_ms must be shorter than transaction_timeout_ms")
        return self

    def producer_linger_ms(self, client: Literal["aiokafka", "confluent"]) -> int:
        """The linger the producer of `client` uses.

        confluent-kafka: 5 ms. librdkafka sends what is queued as soon as it can, so without
        a linger a batch of 500 results left in many small requests while they were being
        queued; `flush` and `commit_transaction`, which end every batch, override the linger,
        so it costs no latency. Bus bench, two pairs: 29-30 against 32-33 µs of CPU per event,
        drain +4-8 %, p99 no worse. aiokafka: 0, since the runtime hands it each partition's
        results as one ready batch."""
        if self.linger_ms is not None:
            return self.linger_ms
        return 5 if client == "confluent" else 0

    max_event_bytes: int = Field(default=256 * 1024, ge=1_024)
    """Records larger than this are dead-lettered as oversized without being parsed."""


class ServiceSettings(BaseSettings):
    """Base settings of a shopstream service; each service subclass sets its env prefix."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__", frozen=True, extra="forbid", env_ignore_empty=True
    )

    kafka: KafkaSettings = KafkaSettings()
    batch: BatchSettings = BatchSettings()
    topics: TopicSettings = TopicSettings()
    group_id: str | None = None
    """Consumer group; defaults to `shopstream-<service>`."""
    http_host: str = "127.0.0.1"
    """Address of the metrics and health server; containers set 0.0.0.0."""
    http_port: int = Field(default=8000, ge=0, le=65_535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    create_topics: bool = True
    """Create missing topics on start-up with the partitions and retention below."""


class ShopstreamSettings(BaseSettings):
    """Settings of the `shopstream` CLI (env prefix `SHOPSTREAM_`)."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPSTREAM_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
