"""The Grafana dashboard: generated, well-formed, one row per service, and every metric it queries
is one the services define (the live cross-check against a real Prometheus is in
tests/integration/test_prometheus_scrape.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry

from shopstream.runtime.metrics import ServiceMetrics
from support.deploy import IMAGES, ROOT

pytestmark = pytest.mark.deploy

DASHBOARD = ROOT / "deploy/grafana/dashboards/shopstream.json"
K8S_COPY = ROOT / "deploy/k8s/base/monitoring/shopstream.json"
# Metrics that come from outside shopstream, and from where.
EXTERNAL_METRICS = {"kafka_consumergroup_lag": "kafka-exporter / Strimzi Kafka Exporter"}
METRIC = re.compile(r"\b((?:shopstream|faststream|kafka)_[a-z0-9_]+)\b")
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


@pytest.fixture(scope="module")
def dashboard():
    return json.loads(DASHBOARD.read_text())


def exported_samples(service: str) -> set[str]:
    registry = CollectorRegistry()
    ServiceMetrics(service, registry)
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in SAMPLE_SUFFIXES[family.type]
    }


def test_committed_files_are_what_the_generator_writes():
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts/grafana_dashboard.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert DASHBOARD.read_text() == K8S_COPY.read_text()


def test_one_row_per_service_with_every_required_panel(dashboard):
    services = sorted(IMAGES.values())
    rows = [panel for panel in dashboard["panels"] if panel["type"] == "row"]
    assert sorted(row["title"] for row in rows) == services
    wanted = {
        "Throughput in / out",
        "Consumer lag",
        "Batch size",
        "Inference latency",
        "End-to-end lag",
        "Dead letters by reason",
        "Model load time",
    }
    current = None
    titles: dict[str, set[str]] = {}
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
            titles[current] = set()
        else:
            titles[current].add(panel["title"])
    for service, seen in titles.items():
        assert wanted <= seen, service
    latency = next(p for p in dashboard["panels"] if p["title"] == "Inference latency")
    assert {target["legendFormat"] for target in latency["targets"]} == {"p50", "p99"}


def test_panels_are_well_formed_and_do_not_overlap(dashboard):
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, panel["title"]
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")")
    (variable,) = dashboard["templating"]["list"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"


def test_every_queried_metric_is_exported(dashboard):
    services = {panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"}
    exported = set().union(*(exported_samples(service) for service in services))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for metric in METRIC.findall(target["expr"]):
                assert metric in exported or metric in EXTERNAL_METRICS, (
                    f"{panel['title']}: {metric} is not exported"
                )
