"""Scale-out: up to three replicas of a service in one consumer group over six partitions.

Checks that the partitions spread over the replicas, that a replica joining or leaving under
load causes one rebalance and loses nothing, and measures rebalance time and throughput with 1,
2 and 3 replicas. Figures go to `bench/results/scale_out.json` and `docs/reliability.md`.

The echo profile's model sleeps per batch (like a model waiting on an accelerator), so the
group's parallelism shows even on 2 cores; it runs on both Kafka clients (`echo` on the
default, confluent-kafka, and `echo-aiokafka`: the default); `SCALE_PROFILES=echo,sentiment`
adds the real
sentiment model, whose gain two cores cap (run by `make soak`). Throughput is recorded, never
asserted: the machine is shared.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path

import pytest

from shopstream.kafka_io import publish_events, publish_paced
from shopstream.settings import KafkaSettings
from support.figures import record
from support.groups import REBALANCING, GroupWatcher, watching
from support.kafka import collect, unique
from support.replicas import (
    ECHO,
    ECHO_AIOKAFKA,
    SENTIMENT,
    ReplicaSet,
    ServiceProfile,
    complete_at,
    create_topics,
    dead_letter_inputs,
    load_average,
    reconcile,
)

pytestmark = pytest.mark.integration

PARTITIONS = 6
REPLICAS = 3

# Echo: 100 ms of "model" per batch of 50, so one replica tops out near 500 events/s.
SCALE_ECHO = dataclasses.replace(
    ECHO, events=1_500, settings={"DELAY_MS": "100", "BATCH__MAX_RECORDS": "50"}
)
# The same on the second client, aiokafka: its group protocol under joins and leaves.
SCALE_ECHO_AIOKAFKA = dataclasses.replace(
    ECHO_AIOKAFKA, events=1_500, settings={**SCALE_ECHO.settings, "KAFKA__CLIENT": "aiokafka"}
)
SCALE_SENTIMENT = dataclasses.replace(SENTIMENT, events=300)
PROFILES = {profile.name: profile for profile in (SCALE_ECHO, SCALE_ECHO_AIOKAFKA, SCALE_SENTIMENT)}
SELECTED = [
    PROFILES[name] for name in os.environ.get("SCALE_PROFILES", "echo,echo-aiokafka").split(",")
]


async def rebalance(
    watcher: GroupWatcher, topic: str, started: float, members: int, within: float
) -> dict[str, float]:
    """Wait for the group to settle on `members`; how long the rebalance itself took (first
    sample out of Stable to settled) and how many rebalances happened since `started`."""
    settled = await watcher.settled(members, topic, PARTITIONS, within)
    unsettled = [
        view.at
        for view in watcher.timeline
        if started < view.at <= settled.at and view.state in REBALANCING
    ]
    return {
        "rebalance_seconds": round(settled.at - min(unsettled, default=settled.at), 2),
        "rebalances": watcher.rebalances(started, settled.at),
    }


@pytest.mark.parametrize("profile", SELECTED, ids=lambda profile: profile.name)
async def test_replicas_share_six_partitions_and_join_or_leave_without_loss(
    profile: ServiceProfile, kafka_bootstrap: str, tmp_path: Path
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    prefix = unique(f"scale.{profile.name}")
    await create_topics(kafka, profile, prefix, PARTITIONS)
    source, results_topic = profile.input_topic(prefix), profile.result_topic(prefix)
    # Distinct inputs per phase: three backlogs, then a stream during a leave and a join.
    events = list(profile.make_events(profile.events * (REPLICAS + 1)))
    phases = [events[i * profile.events : (i + 1) * profile.events] for i in range(REPLICAS + 1)]
    group = ReplicaSet(profile, kafka_bootstrap, prefix, tmp_path, partitions=PARTITIONS)
    figures: dict[str, float] = {"partitions": PARTITIONS}
    try:
        async with watching(kafka, group.group) as watcher:
            for replicas, backlog in enumerate(phases[:REPLICAS], start=1):
                joined = time.monotonic()
                group.start()
                change = await rebalance(
                    watcher, source, joined, replicas, profile.startup_seconds + 30
                )
                assert change["rebalances"] <= 1, f"joining replica {replicas}: {change}"
                figures[f"join_{replicas}_rebalance_seconds"] = change["rebalance_seconds"]
                figures[f"join_{replicas}_rebalances"] = change["rebalances"]
                wanted = {str(event.event_id) for event in backlog}
                started = time.monotonic()
                drained = complete_at(kafka, results_topic, wanted, within=300)
                published = publish_events(kafka, source, backlog)
                completed, _ = await asyncio.gather(drained, published)
                assert completed is not None, f"{replicas} replicas did not drain the backlog"
                figures[f"throughput_{replicas}_replicas"] = round(
                    len(backlog) / (completed - started), 1
                )
                figures[f"load_average_{replicas}_replicas"] = load_average()
            spread = watcher.timeline[-1].held(source)
            assert len(spread) == REPLICAS, spread
            assert all(len(parts) == PARTITIONS // REPLICAS for parts in spread.values()), spread

            # Under a steady stream: one replica leaves (SIGTERM: drain, commit, leave group),
            # then a fresh one joins. Each must be one rebalance, and nothing may be lost.
            rate = len(phases[-1]) / 20
            stream = asyncio.create_task(publish_paced(kafka, source, phases[-1], rate))
            await asyncio.sleep(3)
            left = time.monotonic()
            # In a thread: the watcher must keep sampling while the replica drains and leaves.
            exit_code = await asyncio.to_thread(group.terminate, 0)
            assert exit_code == 0, "a leaving replica drains and exits cleanly"
            change = await rebalance(watcher, source, left, REPLICAS - 1, within=60)
            figures |= {f"leave_{key}": value for key, value in change.items()}
            joined = time.monotonic()
            group.start()
            change = await rebalance(
                watcher, source, joined, REPLICAS, profile.startup_seconds + 30
            )
            figures |= {f"rejoin_{key}": value for key, value in change.items()}
            await stream
            wanted = {str(event.event_id) for event in events}
            assert await complete_at(kafka, results_topic, wanted, within=300) is not None
    finally:
        group.stop_all()
    results = await collect(kafka, results_topic, 10**9, within=3)
    counts = reconcile(
        f"{profile.name}.scale_out", events, results, await dead_letter_inputs(kafka, source)
    )
    assert counts["dead_letters"] == 0
    # Joins and a graceful leave only: every member finishes its batch in flight and commits
    # the partitions it gives up before the group moves on, so no batch is redone (before the
    # runtime did that, each run repeated 11-19 results).
    assert counts["duplicates"] == 0, counts
    assert figures["leave_rebalances"] == 1, figures
    assert figures["rejoin_rebalances"] == 1, figures
    record(f"{profile.name}.scale_out", figures | counts, results="scale_out")
