"""Dead letters replayed after a fix reach their result; a record that keeps failing stops."""

from __future__ import annotations

import pytest

from shopstream.dlq import replay
from shopstream.echo import EchoSettings, build_echo_service
from shopstream.events import ReviewSubmitted
from shopstream.kafka_io import publish_events
from shopstream.settings import KafkaSettings
from shopstream.topics import dead_letter_topic
from support.echo import echo_settings
from support.kafka import collect, unique

pytestmark = pytest.mark.integration


def settings_for(kafka: KafkaSettings, source: str, marker: str | None) -> EchoSettings:
    return echo_settings(kafka, source, partitions=1, fail_marker=marker)


def review(text: str) -> ReviewSubmitted:
    return ReviewSubmitted(
        tenant_id="acme", payload={"review_id": text, "product_id": "p", "text": text}
    )


async def test_replay_after_fix_produces_the_result(kafka_bootstrap: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    source = unique("it.replay")
    bad, good = review("EXPLODE me"), review("fine")
    broken = build_echo_service(settings_for(kafka, source, "EXPLODE"))
    await broken.start()
    try:
        await publish_events(kafka, source, [bad, good])
        assert len(await collect(kafka, dead_letter_topic(source), 1)) == 1
        assert len(await collect(kafka, source + ".out", 1)) == 1
    finally:
        await broken.stop()
    fixed = build_echo_service(settings_for(kafka, source, None))
    await fixed.start()
    try:
        report = await replay(kafka, dead_letter_topic(source), rate=50)
        assert report.replayed == 1
        results = await collect(kafka, source + ".out", 2)
    finally:
        await fixed.stop()
    assert {r["causation_id"] for r in results} == {str(bad.event_id), str(good.event_id)}


async def test_replay_stops_at_the_limit(kafka_bootstrap: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    source = unique("it.loop")
    service = build_echo_service(settings_for(kafka, source, "EXPLODE"))
    await service.start()
    try:
        await publish_events(kafka, source, [review("EXPLODE always")])
        first = await collect(kafka, dead_letter_topic(source), 1)
        assert first[0]["payload"]["replays"] == 0
        once = await replay(kafka, dead_letter_topic(source), max_replays=1)
        second = await collect(kafka, dead_letter_topic(source), 2)
        assert [letter["payload"]["replays"] for letter in second] == [0, 1]
        # The second failure may already have been seen (and skipped) by the first run while it
        # waited for more letters; across both runs it must be skipped exactly once.
        again = await replay(kafka, dead_letter_topic(source), max_replays=1)
    finally:
        await service.stop()
    assert once.replayed + again.replayed == 1
    assert once.skipped_exhausted + again.skipped_exhausted == 1, "a re-failure is left alone"
    third = await collect(kafka, dead_letter_topic(source), 3, within=3)
    assert len(third) == 2, "no further dead letters: the loop stopped"
