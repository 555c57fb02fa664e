"""Fault suite: real services under steady load while replicas, the broker or the model misbehave.

Every scenario runs against each selected service profile: sentiment with the real e5 model, the
describer with the real SmolLM2 generator on a small token budget, the responder with its real
encoders over two shops' knowledge read from its topic, the recommender over replayed activity
and a catalogue (no model per request, so not the slow-model scenario), and optionally the echo
service (the runtime with a no-op model). The suite has its own broker (the shared test broker
must not be disturbed); each scenario uses fresh topics and a fresh group, is bounded in events
and time, and checks that every input has a result or a dead letter, the counts reconcile
exactly, and any duplicate result carries the same event id as its twin. Figures go to
`bench/results/faults.json` and `docs/reliability.md`.

`FAULT_PROFILES=sentiment,describer,responder,recommender,echo-aiokafka,recommender-aiokafka`
(the default: every service on the default client, confluent-kafka, and the runtime and the
recommender on the second one, aiokafka; add `echo` for the runtime alone on confluent-kafka)
selects the services;
`FAULT_SCALE=N` multiplies the inputs per scenario and the number of kills for a longer soak
(`make soak`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from shopstream.devbroker import LocalBrokerConfig
from shopstream.devbroker import broker as local_broker
from shopstream.kafka_io import publish_events, publish_paced
from shopstream.settings import KafkaSettings
from support.figures import record
from support.groups import watching
from support.kafka import collect, unique
from support.ports import broker_port
from support.replicas import (
    DESCRIBER,
    ECHO,
    ECHO_AIOKAFKA,
    RECOMMENDER,
    RECOMMENDER_AIOKAFKA,
    RESPONDER,
    SENTIMENT,
    SESSION_TIMEOUT_MS,
    ReplicaSet,
    ServiceProfile,
    complete_at,
    create_topics,
    dead_letter_inputs,
    load_average,
    reconcile,
)

pytestmark = pytest.mark.integration

PROFILES = {
    profile.name: profile
    for profile in (
        ECHO,
        ECHO_AIOKAFKA,
        SENTIMENT,
        DESCRIBER,
        RESPONDER,
        RECOMMENDER,
        RECOMMENDER_AIOKAFKA,
    )
}
# The echo service (runtime only) is already covered by test_runtime_real_broker's SIGKILL
# tests; by default the suite's time goes to the services with real models, and to the runtime
# and the recommender on the second Kafka client (confluent-kafka), whose failure handling is
# librdkafka's own.
SELECTED = [
    PROFILES[name]
    for name in os.environ.get(
        "FAULT_PROFILES",
        "sentiment,describer,responder,recommender,echo-aiokafka,recommender-aiokafka",
    ).split(",")
]
SCALE = int(os.environ.get("FAULT_SCALE", "1"))
PARTITIONS = 3
LOAD_SECONDS = 10
"""The second half of the inputs arrives evenly over this window, while the fault happens."""

Fault = Callable[[LocalBrokerConfig, ReplicaSet], Awaitable[float]]
"""Does the damage; returns the monotonic time the last disruption began (recovery counts
from there)."""


@pytest.fixture(scope="module")
def fault_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBrokerConfig]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("fault scenarios control their own broker; an external cluster is in use")
    # One broker for the module: every fault leaves it running again, and each scenario has its
    # own topics and group, so sharing it saves a broker start per scenario.
    config = LocalBrokerConfig(
        port=broker_port(692),
        controller_port=broker_port(693),
        home=tmp_path_factory.mktemp("kafka"),
        jars_home=LocalBrokerConfig().home / "jars",
    )
    local_broker.start(config)
    try:
        yield config
    finally:
        local_broker.stop(config)


@pytest.fixture(params=SELECTED, ids=lambda profile: profile.name)
def profile(request: pytest.FixtureRequest) -> ServiceProfile:
    chosen: ServiceProfile = request.param
    return chosen


@pytest.fixture(
    params=[p for p in SELECTED if p.slow_model is not None], ids=lambda profile: profile.name
)
def model_profile(request: pytest.FixtureRequest) -> ServiceProfile:
    """The selected services that run a model per input (the recommender ranks without one)."""
    chosen: ServiceProfile = request.param
    return chosen


async def run_scenario(
    profile: ServiceProfile,
    scenario: str,
    config: LocalBrokerConfig,
    fault: Fault,
    log_dir: Path,
    *,
    replicas: int = 1,
    load_seconds: float = LOAD_SECONDS,
    extra_env: dict[str, str] | None = None,
    events_scale: int = 1,
) -> dict[str, float]:
    kafka = KafkaSettings(bootstrap_servers=config.bootstrap_servers)
    prefix = unique(f"fault.{profile.name}.{scenario}")
    await create_topics(kafka, profile, prefix, PARTITIONS)
    events = list(profile.make_events(profile.events * SCALE * events_scale))
    wanted = {str(event.event_id) for event in events}
    half = len(events) // 2
    source, results_topic = profile.input_topic(prefix), profile.result_topic(prefix)
    group = ReplicaSet(profile, config.bootstrap_servers, prefix, log_dir, extra_env or {})
    for _ in range(replicas):
        group.start()
    try:
        await publish_events(kafka, source, events[:half])
        # The fault must hit a service that is demonstrably working, not one still loading.
        warm = await collect(
            kafka, results_topic, max(1, half // 4), within=profile.startup_seconds
        )
        assert warm, f"{profile.name} produced no result within {profile.startup_seconds} s"
        tailing = asyncio.Event()
        watcher = asyncio.create_task(
            complete_at(kafka, results_topic, wanted, within=400, tailing=tailing)
        )
        # The fault starts only once the tail has its partitions (a freeze would otherwise
        # catch the tail's own metadata request, a test artefact, not a service failure).
        started = asyncio.ensure_future(tailing.wait())
        await asyncio.wait({watcher, started}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if watcher.done():
            watcher.result()  # re-raises why the tail could not start
        assert tailing.is_set(), "the result tail did not start within 60 s"
        rate = (len(events) - half) / load_seconds
        load = asyncio.create_task(publish_paced(kafka, source, events[half:], rate))
        # Likewise the load's producer connects before the fault begins.
        await asyncio.sleep(1.0)
        disrupted = await fault(config, group)
        await asyncio.wait_for(load, timeout=120)
        completed = await watcher
    finally:
        exit_codes = group.stop_all()
    # Read after the drain, so duplicates published while stopping are counted too.
    results = await collect(kafka, results_topic, 10**9, within=3)
    dead = await dead_letter_inputs(kafka, source)
    label = f"{profile.name}.{scenario}"
    assert completed is not None, f"{label}: not every input had a result within 400 s"
    figures = reconcile(label, events, results, dead)
    assert dead == [], f"{label}: infrastructure faults must not dead-letter good records"
    assert exit_codes[-1] == 0, f"{label}: SIGTERM should drain and exit cleanly: {exit_codes}"
    figures |= {
        "replicas": replicas,
        "replica_starts": group.starts,
        "recovery_seconds": round(completed - disrupted, 1),
        "longest_batch_seconds": round(max(group.batch_seconds(), default=0.0), 1),
        "load_average": load_average(),
    }
    record(label, figures)
    return figures


async def test_replica_sigkilled_repeatedly(
    profile: ServiceProfile, fault_broker: LocalBrokerConfig, tmp_path: Path
) -> None:
    kills = 2 * SCALE

    async def kill_repeatedly(_: LocalBrokerConfig, group: ReplicaSet) -> float:
        # Replica 0 dies with no chance to clean up, comes back, and dies again; replica 1 keeps
        # working and takes over its partitions once the session timeout expires. Each kill
        # waits until the restarted replica holds partitions again, so every kill hits a
        # working member rather than one still loading its model.
        kafka = KafkaSettings(bootstrap_servers=group.bootstrap)
        source = profile.input_topic(group.prefix)
        killed_at = time.monotonic()
        async with watching(kafka, group.group) as watcher:
            for _ in range(kills):
                await watcher.settled(2, source, PARTITIONS, within=profile.startup_seconds + 30)
                await asyncio.sleep(2)
                killed_at = time.monotonic()
                group.kill(0)
                group.restart(0)
        return killed_at

    # The load lasts about as long as the kills (session timeout plus restart, each) so that
    # the kills land under traffic.
    await run_scenario(
        profile,
        "replica_sigkill_repeated",
        fault_broker,
        kill_repeatedly,
        tmp_path,
        replicas=2,
        load_seconds=kills * 12,
    )


async def test_broker_restart_mid_stream(
    profile: ServiceProfile, fault_broker: LocalBrokerConfig, tmp_path: Path
) -> None:
    async def restart(config: LocalBrokerConfig, _: ReplicaSet) -> float:
        stopped_at = time.monotonic()
        await asyncio.to_thread(local_broker.stop, config)
        await asyncio.sleep(2)
        await asyncio.to_thread(local_broker.start, config)
        return stopped_at

    await run_scenario(profile, "broker_restart", fault_broker, restart, tmp_path)


async def test_broker_frozen_longer_than_the_session_timeout(
    profile: ServiceProfile, fault_broker: LocalBrokerConfig, tmp_path: Path
) -> None:
    frozen_seconds = SESSION_TIMEOUT_MS / 1000 + 4

    async def freeze(config: LocalBrokerConfig, _: ReplicaSet) -> float:
        pid = local_broker.status(config).pid
        assert pid is not None
        frozen_at = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(frozen_seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
        return frozen_at

    await run_scenario(profile, "broker_sigstop_10s", fault_broker, freeze, tmp_path)


async def test_model_slower_than_the_poll_interval(
    model_profile: ServiceProfile, fault_broker: LocalBrokerConfig, tmp_path: Path
) -> None:
    profile = model_profile
    assert profile.slow_model is not None

    async def nothing(_: LocalBrokerConfig, __: ReplicaSet) -> float:
        return time.monotonic()

    # Big batches (the profile's `slow_model` settings; both halves of the input arrive as
    # bursts, so the batches fill) take seconds against a 1 s poll interval, the smallest the
    # settings allow. Whether or not the group evicts the member mid-batch (its commit would then
    # fail and the batch be redelivered), no input may be lost and a duplicate must keep its id.
    poll_interval_ms = 1_000
    # librdkafka takes no poll interval shorter than the session (it would raise it to the
    # suite's 6 s), so on confluent-kafka the session is as short as the poll interval, which
    # the test brokers allow (`group.min.session.timeout.ms`). The scenario is then the same on
    # both clients: seconds-long batches against a 1 s poll interval.
    short_session = (
        {"BATCH__SESSION_TIMEOUT_MS": str(poll_interval_ms), "BATCH__HEARTBEAT_INTERVAL_MS": "300"}
        if profile.client == "confluent"
        else {}
    )
    figures = await run_scenario(
        profile,
        "model_slower_than_poll_interval",
        fault_broker,
        nothing,
        tmp_path,
        load_seconds=0.5,
        extra_env={
            **profile.slow_model,
            **short_session,
            "BATCH__MAX_POLL_INTERVAL_MS": str(poll_interval_ms),
        },
        # Three times the inputs: on a fast CPU the responder answered a burst of 100 questions
        # in 0.8 s, inside the poll interval, and the scenario did not happen.
        events_scale=3,
    )
    assert figures["longest_batch_seconds"] > poll_interval_ms / 1000, (
        f"no model call outlasted the poll interval, so the scenario did not happen: {figures}"
    )
