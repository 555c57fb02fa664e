"""The CLI against a real broker: topics from the registry, validated publishing, tail."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from typer.testing import CliRunner

from shopstream.cli import app
from shopstream.events import ReviewSubmitted
from support.kafka import unique

pytestmark = pytest.mark.integration
runner = CliRunner()


def env(bootstrap: str, prefix: str) -> dict[str, str]:
    return {
        "SHOPSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "SHOPSTREAM_TOPICS__PRODUCTS": f"{prefix}.products",
        "SHOPSTREAM_TOPICS__REVIEWS": f"{prefix}.reviews",
        "SHOPSTREAM_TOPICS__PARTITIONS": "2",
    }


def test_topics_create_applies_partitions_and_compaction(kafka_bootstrap: str) -> None:
    prefix = unique("cli")
    result = runner.invoke(app, ["topics", "create"], env=env(kafka_bootstrap, prefix))
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    again = runner.invoke(app, ["topics", "create"], env=env(kafka_bootstrap, prefix))
    assert again.exit_code == 0
    assert "created" not in again.output, "a second create is a no-op"
    partitions, cleanup = asyncio.run(describe(kafka_bootstrap, prefix))
    assert partitions == [2, 2]
    assert cleanup == "compact"


async def describe(bootstrap: str, prefix: str) -> tuple[list[int], str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([f"{prefix}.products", f"{prefix}.reviews"])
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, f"{prefix}.products")]
        )
        entries = {entry[0]: entry[1] for entry in configs[0].resources[0][4]}
        return [len(topic["partitions"]) for topic in described], entries["cleanup.policy"]
    finally:
        await admin.close()


def test_publish_validates_every_line_then_sends_and_tail_reads(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = unique("cli")
    topic = f"{prefix}.reviews"
    assert runner.invoke(app, ["topics", "create"], env=env(kafka_bootstrap, prefix)).exit_code == 0
    events = [
        ReviewSubmitted(
            tenant_id=tenant, payload={"review_id": f"r{i}", "product_id": "p", "text": "ok"}
        )
        for i, tenant in enumerate(["acme", "globex", "acme"])
    ]
    lines = [event.to_json().decode() for event in events]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], '{"event_type": "review.submitted"}', lines[1]]) + "\n")
    refused = runner.invoke(app, ["publish", topic, str(bad)], env=env(kafka_bootstrap, prefix))
    assert refused.exit_code == 2
    assert "line 2" in refused.output
    assert "nothing sent" in refused.output

    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(lines) + "\n")
    sent = runner.invoke(app, ["publish", topic, str(good)], env=env(kafka_bootstrap, prefix))
    assert sent.exit_code == 0, sent.output
    assert "published 3 event(s)" in sent.output

    tailed = runner.invoke(
        app, ["tail", topic, "--tenant", "acme"], env=env(kafka_bootstrap, prefix)
    )
    assert tailed.exit_code == 0, tailed.output
    assert "2 event(s)" in tailed.output, "the bad file sent nothing; globex is filtered out"
