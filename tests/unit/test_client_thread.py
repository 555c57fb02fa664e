"""librdkafka calls off the event loop: in order on one daemon thread, and never waited for
longer than their bound (a stuck close must not freeze a service's drain)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from shopstream.echo import EchoSettings
from shopstream.runtime.client_thread import ClientThread, finish_within, run_detached
from shopstream.runtime.confluent import ConfluentAtLeastOnce
from shopstream.settings import BatchSettings
from support.confluent import consumer_around


async def test_calls_run_in_order_on_one_daemon_thread_and_their_errors_come_back() -> None:
    thread = ClientThread("client-test")
    ran: list[tuple[int, str, bool]] = []

    def note(index: int) -> int:
        current = threading.current_thread()
        ran.append((index, current.name, current.daemon))
        return index

    futures = [thread.submit(lambda i=i: note(i)) for i in range(5)]
    assert [await asyncio.wrap_future(f) for f in futures] == [0, 1, 2, 3, 4]
    assert ran == [(i, "client-test", True) for i in range(5)]

    def broken() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await asyncio.wrap_future(thread.submit(broken))
    thread.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        thread.submit(lambda: None)


async def test_calls_submitted_before_a_shutdown_still_run() -> None:
    thread = ClientThread("client-test")
    gate = threading.Event()
    first = thread.submit(gate.wait)
    second = thread.submit(lambda: "ran")
    thread.shutdown()
    gate.set()
    assert await asyncio.wrap_future(first) is True
    assert await asyncio.wrap_future(second) == "ran"


async def test_a_call_that_never_returns_is_left_behind_after_its_bound() -> None:
    stuck = threading.Event()
    started = time.monotonic()
    finished = await run_detached(stuck.wait, 0.3, what="test close")
    waited = time.monotonic() - started
    assert finished is False
    assert 0.3 <= waited < 2.0
    # The loop was free meanwhile, and is still: nothing waits on the stuck thread.
    assert await finish_within(ClientThread("quick").submit(lambda: None), 1.0, what="quick")
    stuck.set()


class StuckOnClose:
    """Stands in for librdkafka's producer: flushes at once, then its close never returns
    (a destroy waiting on a broker thread) until the test lets it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = threading.Event()
        self.closed_on: str | None = None

    def flush(self, timeout: float) -> int:
        self.calls.append("flush")
        return 0

    def purge(self) -> None:
        self.calls.append("purge")

    def close(self) -> bool:
        self.calls.append("close")
        self.closed_on = threading.current_thread().name
        self.release.wait()
        return True


async def test_a_producer_stuck_in_close_does_not_hold_up_the_stop() -> None:
    settings = EchoSettings(batch=BatchSettings(transaction_timeout_ms=1_000))
    delivery = ConfluentAtLeastOnce(settings, client_id="c", group_id="g")
    producer = StuckOnClose()
    delivery._producer = producer  # type: ignore[assignment]  # a stand-in
    started = time.monotonic()
    await delivery.stop()
    # Bounded by twice the transaction timeout, and the close ran off the event loop.
    assert 2.0 <= time.monotonic() - started < 5.0
    assert producer.calls == ["flush", "purge", "close"]
    assert producer.closed_on is not None
    assert producer.closed_on != threading.current_thread().name
    producer.release.set()


async def test_a_stop_closes_the_producer_once_and_forgets_it() -> None:
    delivery = ConfluentAtLeastOnce(EchoSettings(), client_id="c", group_id="g")
    producer = StuckOnClose()
    producer.release.set()
    delivery._producer = producer  # type: ignore[assignment]  # a stand-in
    await delivery.stop()
    await delivery.stop()
    assert producer.calls == ["flush", "purge", "close"]
    assert await delivery.ping(timeout_seconds=0.1) is False


class ConsumerStuckOnClose:
    """Stands in for librdkafka's consumer: its close never returns until the test lets it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.closed_on: str | None = None

    def close(self) -> None:
        self.closed_on = threading.current_thread().name
        self.release.wait()


async def test_a_consumer_stuck_in_close_does_not_hold_up_the_stop() -> None:
    client = ConsumerStuckOnClose()
    consumer = consumer_around(client, thread_name="kafka-consumer", max_poll_interval_ms=1_000)
    started = time.monotonic()
    await consumer.stop()
    # Bounded by the poll interval, as a batch in flight is; closed on the consumer's thread.
    assert 1.0 <= time.monotonic() - started < 4.0
    assert client.closed_on == "kafka-consumer"
    assert not consumer.running
    with pytest.raises(RuntimeError, match="not running"):
        consumer.submit(lambda: None)
    client.release.set()
