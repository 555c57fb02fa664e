"""A real Prometheus (Debian package) scrapes a service on loopback with the project's scrape
config, and answers every dashboard query with the service's metrics."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import shutil
import socket
import subprocess
import time

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from shopstream.echo import build_echo_service
from shopstream.events import ReviewSubmitted
from shopstream.kafka_io import publish_events
from shopstream.settings import KafkaSettings
from support.deploy import ROOT, load_yaml
from support.echo import echo_settings
from support.kafka import collect, unique

pytestmark = pytest.mark.integration

TEMPLATE_JOB = "shopstream-sentiment"
DEADLINE_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape_config(service_port: int) -> dict:
    """The project's Prometheus config with its service job re-pointed at the echo service."""
    project = load_yaml(ROOT / "deploy/prometheus/prometheus.yml")
    template = next(job for job in project["scrape_configs"] if job["job_name"] == TEMPLATE_JOB)
    job = copy.deepcopy(template)
    job["job_name"] = "shopstream-echo"
    job["scrape_interval"] = "1s"
    job["scrape_timeout"] = "1s"
    job["static_configs"] = [
        {"targets": [f"127.0.0.1:{service_port}"], "labels": {"service": "echo"}}
    ]
    return {
        "global": {**project["global"], "scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [job],
    }


def dashboard_queries_for(service: str) -> list[tuple[str, str]]:
    """(panel title, PromQL) of the committed dashboard, every row's service rewritten to
    `service` (the rows are identical but for the name, so each query comes once)."""
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/shopstream.json").read_text())
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    name = re.compile(rf"\bshopstream([_-])(?:{'|'.join(map(re.escape, rows))})(?![a-z0-9])")
    queries = {
        (
            panel["title"],
            name.sub(rf"shopstream\g<1>{service}", target["expr"]).replace(
                "$__rate_interval", "30s"
            ),
        ): None
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }
    return list(queries)


class PrometheusApi:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def query(self, expr: str) -> list[dict]:
        response = await self._client.get("/api/v1/query", params={"query": expr})
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]

    async def wait_for(self, expr: str, minimum: float) -> list[dict]:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            result = await self.query(expr)
            if result and float(result[0]["value"][1]) >= minimum:
                return result
            await asyncio.sleep(0.5)
        raise AssertionError(f"{expr} did not reach {minimum} within {DEADLINE_SECONDS} s")


def wait_until_ready(port: int, process: subprocess.Popen, log_path) -> None:
    """Prometheus answers its API with 503 and a plain-text body until its storage is open;
    a busy machine takes seconds to get there."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited with {process.returncode}: {log_path.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"prometheus not ready within {DEADLINE_SECONDS} s: {log_path.read_text()}")


@pytest.fixture
def prometheus(tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus missing: scripts/bootstrap.sh installs the Debian package")
    ports = {"prometheus": free_port(), "service": free_port()}
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(ports["service"])))
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_ready(ports["prometheus"], process, tmp_path / "prometheus.log")
        yield ports, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def reviews(count: int) -> list[ReviewSubmitted]:
    return [
        ReviewSubmitted(
            tenant_id="acme",
            payload={"review_id": f"r{i}", "product_id": f"p{i % 3}", "text": f"fine {i}"},
        )
        for i in range(count)
    ]


async def test_prometheus_scrapes_the_service_and_answers_the_dashboard(
    kafka_bootstrap: str, prometheus
) -> None:
    ports, process = prometheus
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    source = unique("it.prom")
    settings = echo_settings(kafka, source, partitions=1, http_port=ports["service"])
    service = build_echo_service(settings)
    await service.start()
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{ports['prometheus']}", timeout=5
    ) as client:
        api = PrometheusApi(client)
        try:
            await api.wait_for('up{job="shopstream-echo"}', 1)
            # Two waves: labelled counters appear with their first increment, so the second wave
            # is what the rates see move.
            first, second = reviews(10), reviews(20)
            await publish_events(kafka, source, first)
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
            await producer.start()
            try:
                await producer.send_and_wait(source, b"{not json", key=b"poison")
            finally:
                await producer.stop()
            published = 'shopstream_echo_events_total{status="published"}'
            await api.wait_for(published, len(first))
            await publish_events(kafka, source, second)
            total = len(first) + len(second)
            assert len(await collect(kafka, settings.output_topic, total)) == total
            result = await api.wait_for(published, total)
            assert result[0]["metric"]["job"] == "shopstream-echo"
            assert result[0]["metric"]["service"] == "echo"
            await api.wait_for('shopstream_echo_dead_letters_total{reason="invalid_json"}', 1)
            await asyncio.sleep(2.5)  # a few more scrapes inside the rate window
            for title, expr in dashboard_queries_for("echo"):
                result = await api.query(expr)
                if "kafka_consumergroup_lag" in expr:
                    continue  # from Kafka Exporter, which is not part of this test
                assert result, f"{title}: {expr} returned nothing"
            (throughput,) = await api.query(
                'sum(rate(shopstream_echo_events_total{status="consumed"}[30s]))'
            )
            assert float(throughput["value"][1]) > 0
            names = set((await client.get("/api/v1/label/__name__/values")).json()["data"])
            # The runtime's own histograms (the default client, confluent-kafka, runs without
            # FastStream and so without its `faststream_*` metrics).
            assert {
                "shopstream_echo_batch_size_bucket",
                "shopstream_echo_e2e_lag_seconds_bucket",
                "shopstream_echo_inference_seconds_bucket",
            } <= names
        finally:
            await service.stop()
    assert process.poll() is None, "prometheus exited during the test"
