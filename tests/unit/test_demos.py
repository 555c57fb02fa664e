"""What the demo steps share: the packaged sample data and the ready line with its metrics URL."""

from __future__ import annotations

import pytest
from rich.console import Console

from shopstream import demos
from shopstream.echo import EchoSettings, build_echo_service

pytestmark = pytest.mark.unit


def test_package_json_reads_the_packaged_sample_shop() -> None:
    shop = demos.package_json("shopstream_responder", "demo_shop.json")
    assert isinstance(shop, dict)
    assert shop


async def test_the_ready_line_names_the_service_its_time_and_its_metrics_url() -> None:
    service = build_echo_service(EchoSettings(create_topics=False, http_port=0))
    await service.health.start()
    try:
        console = Console(record=True, width=200)
        demos.announce_ready(console, service, 1.25, " (model)")
        url = f"http://127.0.0.1:{service.health.port}/metrics"
        assert demos.metrics_url(service) == url
        assert (
            console.export_text().strip()
            == f"echo service ready in 1.2 s (model); metrics at {url}"
        )
    finally:
        await service.health.stop()
