"""The describer's `openai` backend against a real serving engine on a real broker.

llama.cpp's OpenAI-compatible server (llama-cpp-python, built by `scripts/llama_server.sh` into
the shopstream cache) serves the Qwen2.5-Coder-0.5B GGUF the transformers backend uses; the
describer consumes products from Kafka, generates through the server and gates what it got.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shopstream.kafka_io import publish_events
from shopstream.models.cache import cache_root
from shopstream.models.chunked_gguf import QWEN_CODER_05B, ensure_gguf
from shopstream.settings import KafkaSettings
from shopstream_describer.app import build_service
from shopstream_describer.config import DescriberSettings
from support.describer import bilingual_products, describer_topics
from support.kafka import collect, unique

pytestmark = pytest.mark.integration

SERVED_MODEL = QWEN_CODER_05B.name
REVISION = "q4_k_m"
SERVER_START_SECONDS = 120.0


def server_python() -> Path:
    return cache_root() / "tools" / "llama-server" / "venv" / "bin" / "python"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (``.../v1``) of a llama.cpp server started for this module."""
    python = server_python()
    if not python.is_file():
        reason = f"no llama.cpp server at {python}: run scripts/llama_server.sh"
        if os.environ.get("KAFKA_REQUIRED") == "1":
            pytest.fail(f"KAFKA_REQUIRED=1 but {reason}")
        pytest.skip(reason)
    model = ensure_gguf(QWEN_CODER_05B)
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        str(python),
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        SERVED_MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    with log.open("wb") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if server.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {server.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).is_success:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server not answering after {SERVER_START_SECONDS} s")
            time.sleep(0.5)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def test_descriptions_come_from_the_serving_engine_and_pass_the_gate(
    kafka_bootstrap: str, llama_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESCRIBER_MODEL__BACKEND", "openai")
    monkeypatch.setenv("DESCRIBER_MODEL__SERVER__BASE_URL", llama_server)
    monkeypatch.setenv("DESCRIBER_MODEL__SERVER__SERVED_MODEL", SERVED_MODEL)
    monkeypatch.setenv("DESCRIBER_MODEL__SERVER__REVISION", REVISION)
    monkeypatch.setenv("DESCRIBER_MODEL__SERVER__CONCURRENCY", "4")
    # llama.cpp's server answers one request at a time (about 17 s each on 2 cores): the fourth
    # of four concurrent requests waits for the other three, past the 60 s default time-out, and
    # a clean-clone CI run on a busy machine failed every retry that way. This test is about
    # what the engine's text goes through, not its latency.
    monkeypatch.setenv("DESCRIBER_MODEL__SERVER__TIMEOUT_SECONDS", "300")
    monkeypatch.setenv("DESCRIBER_MODEL__LANGUAGES", '["en","zh"]')
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    prefix = unique("it.describer-openai")
    settings = DescriberSettings(
        kafka=kafka,
        topics=describer_topics(prefix),
        group_id=f"{prefix}.group",
        http_port=0,
    )
    assert settings.model.backend == "openai"
    service = build_service(settings)
    await service.start()
    try:
        started = time.perf_counter()
        await publish_events(kafka, settings.topics.products, bilingual_products("it-shop"))
        described = await collect(kafka, settings.topics.descriptions, 2, within=480)
        seconds = time.perf_counter() - started
    finally:
        await service.stop()

    by_product = {d["payload"]["product_id"]: d for d in described}
    assert set(by_product) == {"bag-1", "skirt-1"}
    paths = {}
    for product_id, document in by_product.items():
        assert document["lineage"]["model_id"] == SERVED_MODEL
        assert document["lineage"]["model_revision"] == REVISION
        quality = document["payload"]["quality"]
        paths[product_id] = quality["path"]
        assert quality["attempts"] >= 1, "the generator was asked"
        if not quality["review_required"]:
            assert quality["unsupported_claims"] == []
            assert quality["compliance_findings"] == []
        if quality["path"] in ("generated", "regenerated"):
            assert not quality["review_required"]
    print(f"2 descriptions via llama.cpp in {seconds:.1f} s: {paths}")
