"""The echo service (the runtime with a no-op model) under the service contract."""

from __future__ import annotations

from typing import cast

from contract.base import AnyService, Rejected, ServiceContract, common_settings
from shopstream.echo import EchoSettings, build_echo_service
from shopstream.events import Event, ReviewSubmitted
from shopstream.settings import KafkaSettings, ServiceSettings
from shopstream.topics import TopicSettings

FAIL_MARKER = "contract-poison"


class TestEchoContract(ServiceContract):
    name = "echo"

    def settings(self, kafka: KafkaSettings, prefix: str) -> ServiceSettings:
        return EchoSettings(
            input_topic=f"{prefix}.reviews",
            output_topic=f"{prefix}.echo",
            topics=TopicSettings(partitions=1),
            fail_marker=FAIL_MARKER,
            **common_settings(kafka, prefix),
        )

    def build(self, settings: ServiceSettings) -> AnyService:
        return build_echo_service(cast("EchoSettings", settings))

    def input_topic(self, settings: ServiceSettings) -> str:
        return cast("EchoSettings", settings).input_topic

    def output_topic(self, settings: ServiceSettings) -> str:
        return cast("EchoSettings", settings).output_topic

    def valid_event(self, index: int) -> Event:
        return review(f"fine {index}")

    def rejected(self, settings: ServiceSettings) -> Rejected:
        # The handler raises on the configured marker; bisection isolates the one review.
        return Rejected(review(f"a {FAIL_MARKER} review").to_json(), "processing_error")


def review(text: str) -> ReviewSubmitted:
    return ReviewSubmitted(
        tenant_id="contract-shop", payload={"review_id": "r1", "product_id": "p1", "text": text}
    )
