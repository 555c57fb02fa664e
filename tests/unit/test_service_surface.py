"""Settings from the environment, health endpoints and metrics of a service, without Kafka."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from faststream.kafka import TestKafkaBroker

from shopstream.echo import EchoSettings, build_echo_service
from shopstream.events import ReviewSubmitted
from support.memory import IN_MEMORY

pytestmark = pytest.mark.unit


def test_settings_read_prefixed_nested_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECHO_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("ECHO_KAFKA__SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("ECHO_BATCH__MAX_RECORDS", "256")
    monkeypatch.setenv("ECHO_TOPICS__REVIEWS", "acme.reviews")
    settings = EchoSettings()
    assert settings.kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert settings.batch.max_records == 256
    assert settings.topics.reviews == "acme.reviews"
    assert "s3cret" not in repr(settings), "secrets never appear in reprs or logs"


def test_unknown_setting_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="max_recordz"):
        EchoSettings(batch={"max_recordz": 3})  # type: ignore[arg-type]


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = (await reader.read()).decode()
    writer.close()
    status = int(response.split(" ", 2)[1])
    return status, response.split("\r\n\r\n", 1)[1]


async def test_health_and_metrics_endpoints() -> None:
    service = build_echo_service(EchoSettings(create_topics=False, http_port=0, kafka=IN_MEMORY))
    await service.health.start()
    try:
        port = service.health.port
        assert (await http_get(port, "/health/live"))[0] == 200
        assert (await http_get(port, "/health/ready"))[0] == 503
        async with TestKafkaBroker(service.broker):
            event = ReviewSubmitted(
                tenant_id="acme", payload={"review_id": "r", "product_id": "p", "text": "t"}
            )
            await service.broker.publish(event.to_json(), "shop.reviews.submitted")
            await service.broker.publish(b"{broken", "shop.reviews.submitted")
        status, body = await http_get(port, "/metrics")
        assert status == 200
        assert 'shopstream_echo_events_total{status="consumed"} 2.0' in body
        assert 'shopstream_echo_dead_letters_total{reason="invalid_json"} 1.0' in body
        assert "shopstream_echo_batch_size_bucket" in body
        assert "shopstream_echo_inference_seconds_count 1.0" in body
        assert "faststream_received_messages_total" in body
        assert (await http_get(port, "/nope"))[0] == 404
    finally:
        await service.health.stop()


@pytest.mark.parametrize(
    "modules",
    [
        "shopstream_sentiment.app, shopstream_sentiment.handlers, shopstream_sentiment.insights",
        "shopstream_responder.app, shopstream_responder.handlers, shopstream_responder.cli, "
        "shopstream_responder.evaluation",
        "shopstream_recommender.app, shopstream_recommender.handlers, shopstream_recommender.cli",
    ],
    ids=["sentiment", "responder", "recommender"],
)
def test_importing_the_service_does_not_import_torch(modules: str) -> None:
    code = f"import sys, {modules}; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
