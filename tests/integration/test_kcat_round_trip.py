"""A third-party client (kcat, librdkafka) talks to a service: plain Kafka + JSON on the wire.

kcat publishes a valid event and a malformed record to the input topic, then reads the result
event and the dead letter back, as the operations guide tells operators to do.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid

import pytest

from shopstream.echo import build_echo_service
from shopstream.events import ReviewSubmitted
from shopstream.runtime.codec import event_headers
from shopstream.settings import KafkaSettings
from shopstream.topics import dead_letter_topic
from support.echo import echo_settings
from support.kafka import unique

pytestmark = pytest.mark.integration

DEADLINE_SECONDS = 60


@pytest.fixture(scope="module")
def kcat() -> str:
    binary = shutil.which("kcat") or shutil.which("kafkacat")
    if binary is None:
        pytest.fail("kcat missing: scripts/bootstrap.sh installs the Debian package")
    return binary


async def run(*argv: str, stdin: bytes | None = None) -> bytes:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin), timeout=30)
    assert process.returncode == 0, stderr.decode()
    return stdout


async def kcat_read(kcat: str, bootstrap: str, topic: str, wanted) -> dict:
    """Read `topic` from the beginning with kcat until a record matches `wanted`."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        output = await run(
            kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-J", "-q"
        )
        for line in output.decode().splitlines():
            record = json.loads(line)
            if record["payload"] is not None and wanted(record):
                return record
        await asyncio.sleep(0.5)
    raise AssertionError(f"no matching record on {topic} within {DEADLINE_SECONDS} s")


def header_map(record: dict) -> dict[str, str]:
    # kcat -J prints headers as a flat [name, value, name, value, ...] list.
    flat = record.get("headers") or []
    return dict(zip(flat[0::2], flat[1::2], strict=True))


async def test_kcat_publishes_an_event_and_reads_the_result_and_the_dead_letter(
    kafka_bootstrap: str, kcat: str
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    source = unique("it.kcat")
    settings = echo_settings(kafka, source)
    service = build_echo_service(settings)
    await service.start()
    try:
        event = ReviewSubmitted(
            tenant_id="acme",
            payload={"review_id": "r-kcat", "product_id": "p-1", "text": "sent by kcat"},
        )
        headers = [
            arg for name, value in event_headers(event).items() for arg in ("-H", f"{name}={value}")
        ]
        await run(
            kcat,
            "-P",
            "-b",
            kafka_bootstrap,
            "-t",
            source,
            "-k",
            event.message_key(),
            *headers,
            stdin=event.to_json() + b"\n",
        )
        await run(
            kcat, "-P", "-b", kafka_bootstrap, "-t", source, "-k", "acme:p-2", stdin=b"{oops\n"
        )

        result = await kcat_read(
            kcat,
            kafka_bootstrap,
            settings.output_topic,
            lambda record: json.loads(record["payload"])["causation_id"] == str(event.event_id),
        )
        body = json.loads(result["payload"])
        assert result["key"] == event.message_key()
        assert body["producer"]["name"] == "echo"
        assert body["tenant_id"] == "acme"
        assert body["payload"]["text"] == "sent by kcat"
        assert uuid.UUID(body["event_id"]) != event.event_id
        assert header_map(result)["event_type"] == "review.submitted"
        assert header_map(result)["tenant_id"] == "acme"

        letter = await kcat_read(
            kcat,
            kafka_bootstrap,
            dead_letter_topic(source),
            lambda record: record["key"] == "acme:p-2",
        )
        dead = json.loads(letter["payload"])
        assert dead["event_type"] == "dead.letter"
        assert dead["payload"]["reason"] == "invalid_json"
        assert dead["payload"]["original_topic"] == source
    finally:
        await service.stop()
