"""After the compose stack's services were stopped with SIGTERM: run by scripts/compose_check.sh
once every service container has exited with code 0 (not collected by a plain `pytest`).

Each service drains on SIGTERM: it finishes its batch, publishes the results and commits. So its
consumer group must have committed every record on every topic it consumes, up to the end of
each partition: nothing the check published is left for a restart to redo or to lose.
"""

from __future__ import annotations

import os

import pytest

from shopstream.runtime.tables import committed_offsets, end_offsets
from shopstream.services import service_spec
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings

BOOTSTRAP = os.environ.get("SHOPSTREAM_COMPOSE_BOOTSTRAP", "localhost:9092")
SERVICES = os.environ.get(
    "SHOPSTREAM_COMPOSE_SERVICES", "sentiment describer responder recommender"
).split()

pytestmark = pytest.mark.containers


@pytest.mark.timeout(300)
@pytest.mark.parametrize("service", SERVICES)
async def test_a_stopped_service_has_committed_every_record_it_consumes(service: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=BOOTSTRAP)
    # The compose file leaves GROUP_ID and the topic names at their defaults.
    consumed = service_spec(service).registry_use(TopicSettings()).consumes
    ends = await end_offsets(kafka, consumed)
    assert any(end > 0 for end in ends.values()), f"nothing was published to {consumed}"
    committed = await committed_offsets(
        kafka, f"shopstream-{service}", list(ends), client_id="compose-stopped-check"
    )
    behind = {
        f"{tp.topic}[{tp.partition}]": (committed.get(tp), end)
        for tp, end in ends.items()
        if end > 0 and committed.get(tp) != end
    }
    assert behind == {}, f"{service}: (committed, end) per partition: {behind}"
