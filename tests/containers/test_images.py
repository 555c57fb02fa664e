"""The sentiment image, built from the Dockerfile and run the way operators run it.

Sentiment is the cheapest image to build and run: it bakes one small encoder (the recommender
bakes the same one, the responder two, the describer a 0.5B generator) and its results are
one-to-one with its inputs. The container runs as uid 10001 on a read-only root filesystem with
only /tmp writable, on the host network so it reaches the test broker on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from shopstream.kafka_io import publish_events
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings
from shopstream_sentiment.samples import sample_reviews
from support.containers import Engine, find_engine, free_port
from support.kafka import collect, committed_offsets, records_to_end

pytestmark = [pytest.mark.containers, pytest.mark.integration]

# cuda: the locked PyPI wheels. cpu needs PyTorch's CPU index (unreachable on this project's
# machines); set SHOPSTREAM_IMAGE_VARIANT=cpu where it is reachable.
VARIANT = os.environ.get("SHOPSTREAM_IMAGE_VARIANT", "cuda")
IMAGE = f"localhost/shopstream/sentiment:0.1.0-{VARIANT}"
BAKED_MODEL = "multilingual-e5-small"
UID = "10001"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return find_engine()


@pytest.fixture(scope="module")
def image(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> str:
    # Built by the test itself, so a change to a Dockerfile cannot pass on a stale image; the
    # layer cache makes an unchanged rebuild take seconds.
    log = tmp_path_factory.mktemp("build") / "build.log"
    build_args = {"SERVICE": "sentiment", "VARIANT": VARIANT}
    seconds = engine.build("Dockerfile", IMAGE, build_args, log)
    print(f"built {IMAGE} in {seconds:.0f} s")
    return IMAGE


@pytest.fixture
def container_name(engine: Engine) -> Iterator[str]:
    name = f"shopstream-it-{uuid.uuid4().hex[:8]}"
    yield name
    engine.run("rm", "--force", name, check=False)


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def wait_for_ready(engine: Engine, name: str, port: int, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if http_status(port, "/health/ready") == 200:
            return
        if engine.run("inspect", "--format", "{{.State.Running}}", name) != "true":
            break
        time.sleep(1)
    logs = engine.run("logs", "--tail", "40", name, check=False)
    pytest.fail(f"{name} was not ready within {within:.0f} s; last log lines:\n{logs}")


@pytest.mark.timeout(2400)
async def test_the_image_runs_read_only_as_non_root_scores_reviews_and_drains_on_sigterm(
    kafka_bootstrap: str, engine: Engine, image: str, container_name: str
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    prefix = f"ct.sentiment.{uuid.uuid4().hex[:8]}"
    topics = TopicSettings(
        reviews=f"{prefix}.reviews",
        sentiment=f"{prefix}.sentiment",
        insights=f"{prefix}.insights",
        partitions=3,
    )
    group = f"{prefix}.group"
    port = free_port()
    env = {
        "SENTIMENT_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SENTIMENT_TOPICS__REVIEWS": topics.reviews,
        "SENTIMENT_TOPICS__SENTIMENT": topics.sentiment,
        "SENTIMENT_TOPICS__INSIGHTS": topics.insights,
        "SENTIMENT_TOPICS__PARTITIONS": "3",
        "SENTIMENT_GROUP_ID": group,
        "SENTIMENT_HTTP_HOST": "127.0.0.1",
        "SENTIMENT_HTTP_PORT": str(port),
    }
    flags = [f"--env={name}={value}" for name, value in env.items()]
    engine.run(
        "run", "--detach", "--name", container_name, "--network", "host",
        "--read-only", "--tmpfs", "/tmp:rw,size=256m", *flags, image,
    )  # fmt: skip

    # How it runs: the image's user, a read-only root, the model baked in at build time.
    assert engine.run("exec", container_name, "id", "-u") == UID
    assert engine.run("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", container_name) == (
        "true"
    )
    # /var/cache/shopstream belongs to the service user: only the read-only root refuses this.
    touched = engine.run(
        "exec", container_name, "sh", "-c", "touch /var/cache/shopstream/x 2>&1 || true"
    )
    assert "Read-only file system" in touched
    engine.run("exec", container_name, "touch", "/tmp/x")  # the tmpfs stays writable
    baked = engine.run("exec", container_name, "ls", "/opt/shopstream/cache/models")
    assert BAKED_MODEL in baked.split()

    wait_for_ready(engine, container_name, port, within=300)
    assert http_status(port, "/health/live") == 200
    # The image's own health check (its HEALTHCHECK command) finds the port from the service's
    # settings variable; check=True fails the test on a non-zero exit.
    engine.run("exec", container_name, "python", "-m", "shopstream.container", "health")

    # Events in, results out.
    first = sample_reviews("ct-shop")
    await publish_events(kafka, topics.reviews, first)
    scored = await collect(kafka, topics.sentiment, len(first), within=180)
    assert {s["causation_id"] for s in scored} == {str(e.event_id) for e in first}
    assert all(s["_headers"]["event_type"] == "review.scored" for s in scored)

    # SIGTERM while a second batch is in flight: the service drains, exits 0 and commits only
    # what it has answered.
    second = sample_reviews("ct-shop-2")
    await publish_events(kafka, topics.reviews, second)
    await asyncio.sleep(0.5)
    engine.run("stop", "--time", "60", container_name, timeout=90)
    exit_code = engine.run("inspect", "--format", "{{.State.ExitCode}}", container_name)
    logs = engine.run("logs", "--tail", "20", container_name, check=False)
    assert exit_code == "0", f"exit code {exit_code}; last log lines:\n{logs}"

    inputs = await records_to_end(kafka, topics.reviews)
    committed = await committed_offsets(kafka, group, topics.reviews)
    answered = {
        s["causation_id"]
        for s in await collect(kafka, topics.sentiment, len(first) + len(second), within=10)
    }
    committed_inputs = [
        record for record in inputs if record.offset < committed.get(record.partition, 0)
    ]
    assert len(committed_inputs) >= len(first), "the first batch is committed"
    unanswered = [
        record.offset for record in committed_inputs if _event_id(record.value) not in answered
    ]
    assert not unanswered, f"committed without a result: offsets {unanswered}"


def _event_id(value: bytes | None) -> str:
    return str(json.loads(value or b"{}")["event_id"])
