"""Services under test as real processes, and the bookkeeping that proves nothing was lost.

The fault suite and the scale-out test start replicas with `python -m shopstream.cli run <name>`,
exactly as an operator would, so a SIGKILL kills a whole process (model, consumer, producer) and
no test-only code path is exercised. A `ServiceProfile` says, per service, what to send, where
its per-input results land, and how to configure it for a bounded CI run.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from shopstream.events import Event, ProductUpserted, QuestionAsked, ReviewSubmitted
from shopstream.kafka_io import publish_events, topic_partitions
from shopstream.runtime.admin import ensure_topics
from shopstream.runtime.security import aiokafka_options
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings, dead_letter_topic
from shopstream_sentiment.samples import sample_rows
from support.kafka import collect
from support.recommender import activity, request, upsert
from support.responder import NORTH, SOUTH, knowledge_events

# Short enough that a frozen broker or a killed replica is noticed within a test, long enough
# that a loaded 2-core machine does not evict healthy members.
SESSION_TIMEOUT_MS = 6_000


def review_events(count: int) -> list[ReviewSubmitted]:
    """Real review texts (English and Chinese) cycled; 60 products so 6 partitions all get keys."""
    rows = sample_rows()
    return [
        ReviewSubmitted(
            tenant_id="acme",
            payload={
                "review_id": f"r{index}",
                "product_id": f"p{index % 60}",
                "text": rows[index % len(rows)]["text"],
                "rating": rows[index % len(rows)]["rating"],
                "locale": rows[index % len(rows)]["locale"],
            },
        )
        for index in range(count)
    ]


def product_events(count: int) -> list[ProductUpserted]:
    """Distinct products, so each has exactly one description (unchanged ones are skipped)."""
    colours = ("Navy", "Olive", "Sand", "Black")
    return [
        ProductUpserted(
            tenant_id="acme",
            payload={
                "product_id": f"bag-{index}",
                "title": f"Canvas Tote Bag {index}",
                "brand": "Acme",
                "category": "Bags",
                "attributes": {"colour": colours[index % len(colours)], "material": "Canvas"},
                "target_locales": ["en"],
            },
        )
        for index in range(count)
    ]


CUSTOMER_QUESTIONS = (
    "How many days do I have to return an item?",
    "我可以在多少天内申请无理由退货？",
    "How long does delivery take?",
    "退款多久到账？",
    "I want to talk to a real person",
    "Do you sell garden furniture?",
)


def question_events(count: int) -> list[QuestionAsked]:
    """Questions (English and Chinese; answered, handed off, not covered) to the two test
    shops, one conversation each, so keys spread over the partitions."""
    return [
        QuestionAsked(
            tenant_id=(NORTH, SOUTH)[index % 2],
            payload={
                "conversation_id": f"c{index}",
                "text": CUSTOMER_QUESTIONS[index % len(CUSTOMER_QUESTIONS)],
            },
        )
        for index in range(count)
    ]


SHOPPERS = 50
CATALOGUE = (("Red Summer Dress", "dress"), ("Cordless Drill", "drill"), ("Glass Kettle", "kettle"))


def recommendation_requests(count: int) -> list[Event]:
    """Recommendation requests from 50 shoppers whose activity the tables seed."""
    return [request(f"u{index % SHOPPERS}", tenant="acme") for index in range(count)]


def _recommender_tables(prefix: str) -> dict[str, Sequence[Event]]:
    products = [
        upsert(f"p{index}", f"{title} {index}", tenant="acme", category=category)
        for index, (title, category) in enumerate(CATALOGUE * 20)
    ]
    views = [
        activity(f"u{index % SHOPPERS}", f"p{(index * 7) % len(products)}", tenant="acme")
        for index in range(400)
    ]
    return {prefix + ".products": products, prefix + ".activity": views}


def _no_tables(prefix: str) -> dict[str, Sequence[Event]]:
    return {}


@dataclass(frozen=True)
class ServiceProfile:
    """How one service is driven in a reliability test."""

    name: str
    events: int
    """Inputs per fault scenario, sized so the scenario fits CI on a 2-core machine."""
    make_events: Callable[[int], Sequence[Event]]
    topics: dict[str, str]
    """The settings (without prefix) naming the service's topics, each the test's unique
    prefix plus a suffix: `.in` the input, `.out` the topic with one result per input (its
    `causation_id` is the input's `event_id`)."""
    settings: dict[str, str] = field(default_factory=dict)
    """Service settings (without prefix) for a bounded run, e.g. the generator's token budget."""
    slow_model: dict[str, str] | None = field(default_factory=dict)
    """Settings that make one model call take several seconds (a batch too big to finish
    within a 1 s poll interval); None when no model runs per input (the scenario does not
    apply)."""
    startup_seconds: float = 180
    """Upper bound for a replica's start, model load included, on a busy machine (a sentiment
    replica took 110 s to import torch at load average 10)."""
    tables: Callable[[str], dict[str, Sequence[Event]]] = _no_tables
    """Reference data published before the replicas start, by topic (what the service reads
    in full at start-up, e.g. the responder's knowledge)."""

    service: str = ""
    """The service the profile runs when its name is a variant's (e.g. `echo-aiokafka`)."""

    @property
    def service_name(self) -> str:
        return self.service or self.name

    @property
    def client(self) -> str:
        """The Kafka client the profile's replicas consume and publish with."""
        return self.settings.get("KAFKA__CLIENT", KafkaSettings().client)

    @property
    def env_prefix(self) -> str:
        return f"{self.service_name.upper()}_"

    def topic_env(self, prefix: str) -> dict[str, str]:
        """Environment (without `env_prefix`) naming the topics for a unique test prefix."""
        return {setting: prefix + suffix for setting, suffix in self.topics.items()}

    def input_topic(self, prefix: str) -> str:
        return prefix + ".in"

    def result_topic(self, prefix: str) -> str:
        return prefix + ".out"


def _responder_tables(prefix: str) -> dict[str, Sequence[Event]]:
    return {prefix + ".knowledge": knowledge_events()}


ECHO = ServiceProfile(
    name="echo",
    events=1_500,
    make_events=review_events,
    topics={"INPUT_TOPIC": ".in", "OUTPUT_TOPIC": ".out"},
    settings={"DELAY_MS": "20", "BATCH__MAX_RECORDS": "50"},
    slow_model={"DELAY_MS": "5000", "BATCH__MAX_RECORDS": "400"},
    startup_seconds=60,
)

# The runtime alone on the second Kafka client, aiokafka (pure Python, FastStream's subscriber):
# the same faults, the same checks.
ECHO_AIOKAFKA = dataclasses.replace(
    ECHO,
    name="echo-aiokafka",
    service="echo",
    settings={**ECHO.settings, "KAFKA__CLIENT": "aiokafka"},
)

# One torch thread per replica: two replicas (the SIGKILL scenario) then share the two cores
# instead of thrashing them, and a single replica's speed does not depend on the other jobs.
SENTIMENT = ServiceProfile(
    name="sentiment",
    events=160,
    make_events=review_events,
    topics={
        "TOPICS__REVIEWS": ".in",
        "TOPICS__SENTIMENT": ".out",
        "TOPICS__INSIGHTS": ".insights",
    },
    settings={"MODEL__THREADS": "1", "BATCH__MAX_RECORDS": "32"},
    # e5-small on one thread scores roughly 20-60 reviews/s here, so 256 reviews take seconds.
    slow_model={"BATCH__MAX_RECORDS": "256", "BATCH__BATCH_TIMEOUT_MS": "2000"},
)

# A real generator stays on, so the suite exercises real generation in the worker thread: the
# small English-only SmolLM2-135M (the 0.5B default would only slow the suite), with an 8-token
# budget and one attempt per text: under a second per product on a
# quiet core instead of the default budget's ~15 s (2-3 s at load average 10). Quality checks
# then repair or flag the short texts; every product still gets exactly one description event,
# which is what is counted.
DESCRIBER = ServiceProfile(
    name="describer",
    events=16,
    make_events=product_events,
    topics={
        "TOPICS__PRODUCTS": ".in",
        "TOPICS__DESCRIPTIONS": ".out",
        "TOPICS__COPY_REQUESTS": ".copy-requests",
        "TOPICS__COPIES": ".copies",
    },
    settings={
        "MODEL__GENERATOR": "smollm2-135m-instruct",
        "MODEL__LANGUAGES": '["en"]',
        "MODEL__THREADS": "1",
        "MODEL__DESCRIPTION_TOKENS": "8",
        "MODEL__MAX_ATTEMPTS": "1",
        "MODEL__BATCH_SIZE": "8",
        "BATCH__MAX_RECORDS": "4",
    },
    slow_model={"BATCH__MAX_RECORDS": "8", "BATCH__BATCH_TIMEOUT_MS": "2000"},
)

# The service's default encoders (e5, plus MiniLM for English) over the two test shops'
# knowledge, read from its topic at start-up; one torch thread per replica, as for sentiment.
RESPONDER = ServiceProfile(
    name="responder",
    events=200,
    make_events=question_events,
    topics={
        "TOPICS__QUESTIONS": ".in",
        "TOPICS__ANSWERS": ".out",
        "TOPICS__KNOWLEDGE": ".knowledge",
        "TOPICS__PRODUCTS": ".products",
    },
    settings={"MODEL__THREADS": "1", "BATCH__MAX_RECORDS": "32"},
    # Roughly 20-40 questions/s on one thread, so a batch of a hundred takes seconds.
    slow_model={"BATCH__MAX_RECORDS": "256", "BATCH__BATCH_TIMEOUT_MS": "2000"},
    tables=_responder_tables,
)

# Requests answered from state rebuilt on every start (activity replayed up to the group's
# committed offsets, the catalogue read in full and embedded by e5 in the background). Ranking
# takes about a millisecond and no model runs per request, so the slow-model scenario does not
# apply.
RECOMMENDER = ServiceProfile(
    name="recommender",
    events=400,
    make_events=recommendation_requests,
    topics={
        "TOPICS__RECS_REQUESTS": ".in",
        "TOPICS__RECS_RESULTS": ".out",
        "TOPICS__ACTIVITY": ".activity",
        "TOPICS__PRODUCTS": ".products",
    },
    settings={"BATCH__MAX_RECORDS": "32"},
    slow_model=None,
    tables=_recommender_tables,
)

# The recommender on the second client, aiokafka: its state catch-up on assignment runs through
# FastStream's rebalance listener there, not librdkafka's callbacks.
RECOMMENDER_AIOKAFKA = dataclasses.replace(
    RECOMMENDER,
    name="recommender-aiokafka",
    service="recommender",
    settings={**RECOMMENDER.settings, "KAFKA__CLIENT": "aiokafka"},
)


@dataclass
class ReplicaSet:
    """Replicas of one service in one consumer group, each a separate OS process."""

    profile: ServiceProfile
    bootstrap: str
    prefix: str
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    partitions: int = 3
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    starts: int = 0

    @property
    def group(self) -> str:
        return self.prefix + ".group"

    def _env(self) -> dict[str, str]:
        own = {
            "KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "GROUP_ID": self.group,
            "HTTP_PORT": "0",
            "TOPICS__PARTITIONS": str(self.partitions),
            "BATCH__SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "BATCH__HEARTBEAT_INTERVAL_MS": "1000",
            **self.profile.topic_env(self.prefix),
            **self.profile.settings,
            **self.extra_env,
        }
        return {**os.environ, **{self.profile.env_prefix + k: v for k, v in own.items()}}

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        # One log per start, kept in the test's tmp dir: the first place to look when a
        # scenario fails, and never mixed into pytest's output.
        log = (self.log_dir / f"{self.profile.name}-{self.starts}.log").open("wb")
        with log:
            return subprocess.Popen(
                [sys.executable, "-m", "shopstream.cli", "run", self.profile.service_name],
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start(self) -> int:
        self.processes.append(self._spawn())
        return len(self.processes) - 1

    def kill(self, index: int) -> None:
        self.processes[index].send_signal(signal.SIGKILL)
        self.processes[index].wait(timeout=10)

    def restart(self, index: int) -> None:
        self.processes[index] = self._spawn()

    def terminate(self, index: int, timeout: float = 60) -> int:
        """SIGTERM (drain, publish, commit, exit) and the exit code."""
        process = self.processes[index]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=10)

    def stop_all(self) -> list[int]:
        return [self.terminate(index) for index in range(len(self.processes))]

    def batch_seconds(self) -> list[float]:
        """How long each batch took in every replica, read from their logs (on aiokafka,
        FastStream logs `Received` and `Processed` around each batch; on confluent-kafka the
        runtime logs `batch handled` with its seconds): evidence that a slow-model scenario
        really had model calls longer than the poll interval."""
        durations = []
        for path in sorted(self.log_dir.glob(f"{self.profile.name}-*.log")):
            received: datetime | None = None
            for line in path.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("msg") == "batch handled":
                    durations.append(float(entry["seconds"]))
                elif entry.get("msg") == "Received":
                    received = datetime.fromisoformat(entry["ts"])
                elif entry.get("msg") == "Processed" and received is not None:
                    finished = datetime.fromisoformat(entry["ts"])
                    durations.append((finished - received).total_seconds())
                    received = None
        return durations


async def create_topics(kafka: KafkaSettings, profile: ServiceProfile, prefix: str, n: int) -> None:
    tables = profile.tables(prefix)
    topics = (profile.input_topic(prefix), profile.result_topic(prefix), *tables)
    await ensure_topics(kafka, TopicSettings(partitions=n).specs(topics))
    for topic, events in tables.items():
        await publish_events(kafka, topic, events)


async def complete_at(
    kafka: KafkaSettings,
    topic: str,
    wanted: set[str],
    within: float,
    *,
    tailing: asyncio.Event | None = None,
) -> float | None:
    """Tail `topic` from the beginning; the monotonic time at which the last wanted input got
    its first result, or None if that did not happen within `within` seconds.

    A live tail rather than repeated re-reads, so recovery times are not rounded up to the
    re-read period. `tailing` is set once the tail has its partitions: a fault must not start
    before that, or the tail's own metadata request may hit the fault (a frozen broker).
    """
    seen: set[str] = set()
    deadline = time.monotonic() + within
    consumer = AIOKafkaConsumer(**aiokafka_options(kafka), enable_auto_commit=False)
    await consumer.start()
    try:
        assignment = await topic_partitions(consumer, topic)
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        if tailing is not None:
            tailing.set()
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=1_000)
            seen.update(
                str(json.loads(record.value or b"{}")["causation_id"])
                for records in batches.values()
                for record in records
            )
            if seen >= wanted:
                return time.monotonic()
    finally:
        await consumer.stop()
    return None


async def dead_letter_inputs(kafka: KafkaSettings, input_topic: str) -> list[str]:
    """The input `event_id` of every dead letter of `input_topic` (unparseable input: '?')."""
    try:
        letters = await collect(kafka, dead_letter_topic(input_topic), 10**9, within=2)
    except LookupError:  # no replica ever needed the dead-letter topic
        return []
    inputs = []
    for letter in letters:
        original = base64.b64decode(letter["payload"]["original_value_b64"])
        try:
            inputs.append(str(json.loads(original)["event_id"]))
        except (ValueError, KeyError, TypeError):
            inputs.append("?")
    return inputs


def reconcile(
    label: str, events: Sequence[Event], results: Sequence[dict[str, Any]], dead: Sequence[str]
) -> dict[str, float]:
    """Assert that every input has a result or a dead letter and duplicates keep their id.

    Returns the counts: inputs = distinct results + dead letters exactly, and results =
    distinct results + duplicates.
    """
    wanted = {str(event.event_id) for event in events}
    ids: dict[str, set[str]] = {}
    for result in results:
        ids.setdefault(str(result["causation_id"]), set()).add(str(result["event_id"]))
    missing = wanted - set(ids) - set(dead)
    assert not missing, f"{label}: {len(missing)} inputs have neither a result nor a dead letter"
    assert set(ids) <= wanted, f"{label}: results for inputs that were never sent"
    assert not set(ids) & set(dead), f"{label}: an input has both a result and a dead letter"
    renamed = [cause for cause, twins in ids.items() if len(twins) > 1]
    assert not renamed, f"{label}: {len(renamed)} duplicates carry a new event id"
    assert len(ids) + len(set(dead)) == len(wanted), f"{label}: counts do not reconcile"
    return {
        "inputs": len(wanted),
        "results": len(results),
        "dead_letters": len(dead),
        "duplicates": len(results) - len(ids),
    }


def load_average() -> float:
    """1-minute load average, recorded next to every timing (2 cores shared with other jobs)."""
    return round(os.getloadavg()[0], 2)
