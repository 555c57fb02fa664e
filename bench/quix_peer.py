"""The bus benchmark's Quix Streams peer: the same work as the echo service, as a Quix app.

Runs in its own environment so the product never depends on Quix Streams; `bus_bench.py`
starts it as

    uv run --isolated --no-project --with quixstreams==3.28.1 python bench/quix_peer.py \
        BOOTSTRAP SOURCE GROUP

It reads SOURCE, builds a small JSON result per event (a new id, the cause's id, the same
payload) and writes it to SOURCE.out, at least once with Quix's default checkpointing. It
prints `ready` once the app is built, then runs until SIGTERM; on exit it prints its CPU
seconds since `ready`, which the bench adds to the column (Quix runs in this process, not the
bench's).
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
import uuid
from typing import Any

from quixstreams import Application  # type: ignore[import-not-found]  # its own environment


def main() -> None:
    bootstrap, source, group = sys.argv[1:4]
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        loglevel="WARNING",
        # Stateless, but Quix makes its state folders anyway: keep them out of the checkout.
        state_dir=tempfile.mkdtemp(prefix="quix-peer-"),
    )
    inputs = app.topic(source, value_deserializer="json")
    outputs = app.topic(source + ".out", value_serializer="json")

    def result(event: dict[str, Any]) -> dict[str, Any]:
        return {
            **event,
            "event_id": str(uuid.uuid4()),
            "causation_id": event["event_id"],
            "producer": {"name": "quix-peer", "version": "1"},
        }

    frame = app.dataframe(inputs).apply(result)
    frame.to_topic(outputs)
    started = time.process_time()

    def report(*_: object) -> None:
        print(f"cpu_seconds {time.process_time() - started:.4f}", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: app.stop())
    print("ready", flush=True)
    try:
        app.run()
    finally:
        report()


if __name__ == "__main__":
    main()
