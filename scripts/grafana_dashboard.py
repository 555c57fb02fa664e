"""Write the Grafana dashboard: one row per service, the same panels in every row.

    uv run python scripts/grafana_dashboard.py          # rewrite the committed JSON files
    uv run python scripts/grafana_dashboard.py --check  # exit 1 when they are out of date

Its rows are the installed services' specs (`shopstream.services`) that ship an image; after
adding a service, rerun the script. The panels read the metrics every
service exports (`shopstream.runtime.metrics.ServiceMetrics`) and the consumer-group lag that
kafka-exporter (docker-compose) or Strimzi's Kafka Exporter (Kubernetes) publishes.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopstream.services import discover

ROOT = Path(__file__).resolve().parent.parent
OUTPUTS = (
    ROOT / "deploy/grafana/dashboards/shopstream.json",
    ROOT / "deploy/k8s/base/monitoring/shopstream.json",
)
SERVICES = tuple(name for name, spec in discover().items() if spec.image)
RATE = "$__rate_interval"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    width: int
    kind: str = "timeseries"


def quantiles(histogram: str) -> tuple[Query, ...]:
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket[{RATE}])))",
            f"p{round(q * 100)}",
        )
        for q in (0.5, 0.99)
    )


def service_panels(service: str) -> list[list[Panel]]:
    """The panels of one service's row, line by line (each line's widths add up to 24)."""
    metric = f"shopstream_{service}"
    group = f"shopstream-{service}"
    events = f"{metric}_events_total"
    return [
        [
            Panel(
                "Throughput in / out",
                "Events consumed from the input topic, results published, records dead-lettered.",
                "ops",
                tuple(
                    Query(f'sum(rate({events}{{status="{status}"}}[{RATE}]))', status)
                    for status in ("consumed", "published", "dead_lettered")
                ),
                width=12,
            ),
            Panel(
                "Consumer lag",
                f"Records the consumer group {group} has not committed yet, per topic "
                "(from Kafka Exporter). KEDA scales on the same figure.",
                "short",
                (
                    Query(
                        f'sum by (topic) (kafka_consumergroup_lag{{consumergroup="{group}"}})',
                        "{{topic}}",
                    ),
                ),
                width=12,
            ),
        ],
        [
            Panel(
                "Batch size",
                "Records per consumed batch (bounded by BATCH__MAX_RECORDS).",
                "short",
                (
                    *quantiles(f"{metric}_batch_size"),
                    Query(
                        f"sum(rate({metric}_batch_size_sum[{RATE}])) / "
                        f"sum(rate({metric}_batch_size_count[{RATE}]))",
                        "mean",
                    ),
                ),
                width=8,
            ),
            Panel(
                "Inference latency",
                "Wall time of one batched model call.",
                "s",
                quantiles(f"{metric}_inference_seconds"),
                width=8,
            ),
            Panel(
                "End-to-end lag",
                "From an input event's occurred_at to its result acknowledged by the broker.",
                "s",
                quantiles(f"{metric}_e2e_lag_seconds"),
                width=8,
            ),
        ],
        [
            Panel(
                "Dead letters by reason",
                "Records sent to <input topic>.dlq; see docs/operations.md for inspection.",
                "ops",
                (
                    Query(
                        f"sum by (reason) (rate({metric}_dead_letters_total[{RATE}]))",
                        "{{reason}}",
                    ),
                ),
                width=12,
            ),
            Panel(
                "Model load time",
                "Last model load per replica (conversion included on a cold cache).",
                "s",
                (Query(f"max by (instance) ({metric}_model_load_seconds)", "{{instance}}"),),
                width=6,
                kind="stat",
            ),
            Panel(
                "Ready replicas",
                "Replicas with the model loaded, consuming, and the cluster answering.",
                "short",
                (Query(f"sum({metric}_ready)", "ready"),),
                width=6,
                kind="stat",
            ),
        ],
    ]


def panel_json(panel: Panel, panel_id: int, x: int, y: int, height: int) -> dict[str, Any]:
    options: dict[str, Any]
    if panel.kind == "stat":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        }
    else:
        options = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "none"},
        }
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": options,
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend,
                "range": True,
            }
            for index, query in enumerate(panel.queries)
        ],
    }


def dashboard(services: tuple[str, ...] = SERVICES) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    for service in services:
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": service,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        for line in service_panels(service):
            x = 0
            height = 8 if any(panel.kind == "timeseries" for panel in line) else 4
            for panel in line:
                panels.append(panel_json(panel, len(panels) + 1, x, y, height))
                x += panel.width
            y += height
    return {
        "uid": "shopstream",
        "title": "shopstream",
        "description": "Per-service throughput, lag, batching, latency and dead letters.",
        "tags": ["shopstream", "kafka"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "includeAll": False,
                    "multi": False,
                    "options": [],
                    "refresh": 1,
                }
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    check = parser.parse_args().check
    text = render()
    stale = [path for path in OUTPUTS if not path.exists() or path.read_text() != text]
    if check:
        for path in stale:
            sys.stdout.write(f"{path.relative_to(ROOT)} is stale: rerun {Path(__file__).name}\n")
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        sys.stdout.write(f"wrote {path.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
