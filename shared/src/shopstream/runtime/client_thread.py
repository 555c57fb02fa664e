"""librdkafka calls off the event loop, on threads that can never hold the process hostage.

A librdkafka call that blocks in C (a consumer's close waiting on its group, a handle's destroy
waiting on a broker thread) blocks whatever thread made it, and no Python signal handler runs on
that thread until it returns. Made on the event loop, such a call would freeze the service, its
drain and SIGTERM handling with it. So every call that may wait on the cluster runs on a
`ClientThread`, and the loop waits for it at most a bounded time (`finish_within`).

A `ClientThread` is a daemon thread. A `ThreadPoolExecutor`'s workers are not: the interpreter
joins them at exit, so a close that never returned would also keep the process from exiting.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["ClientThread", "finish_within", "run_detached"]

_T = TypeVar("_T")
logger = logging.getLogger("shopstream.confluent")


class ClientThread:
    """Runs calls one after another, in order, on one daemon thread of its own."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._shut_down = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], _T]) -> Future[_T]:
        """Run `call` after whatever runs or waits here now; RuntimeError once shut down."""
        future: Future[_T] = Future()
        with self._lock:
            if self._shut_down:
                raise RuntimeError("the client's thread is shut down")
            self._calls.put((call, future))
        return future

    def shutdown(self) -> None:
        """Refuse new calls; the thread ends once those already submitted have run."""
        with self._lock:
            if not self._shut_down:
                self._shut_down = True
                self._calls.put(None)

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            call, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call()
            except BaseException as error:  # noqa: BLE001 - handed to whoever waits
                future.set_exception(error)
            else:
                future.set_result(result)


async def finish_within(future: Future[_T], seconds: float, *, what: str) -> bool:
    """Wait for `future` at most `seconds`; False, logged, if it has not finished by then (its
    thread is left to it). Its exception, if it raised, is raised here."""
    waiting = asyncio.wrap_future(future)
    done, _ = await asyncio.wait([waiting], timeout=seconds)
    if not done:
        # Only the wait is cancelled: the thread cannot be, and whatever it ends with is dropped.
        waiting.cancel()
        logger.error(
            "a librdkafka call did not return in time; the service goes on without it",
            extra={"call": what, "waited_seconds": seconds},
        )
        return False
    waiting.result()
    return True


async def run_detached(call: Callable[[], object], seconds: float, *, what: str) -> bool:
    """Run `call` on a daemon thread of its own and wait for it at most `seconds`."""
    thread = ClientThread(f"librdkafka-{what}")
    try:
        return await finish_within(thread.submit(call), seconds, what=what)
    finally:
        thread.shutdown()
