"""The broker a bench measures against: the one KAFKA_BOOTSTRAP_SERVERS names, else a local one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from shopstream.devbroker import LocalBrokerConfig
from shopstream.devbroker import broker as local_broker


@contextlib.contextmanager
def bench_broker(port: int, home: Path | None = None) -> Iterator[str]:
    """The bootstrap servers of KAFKA_BOOTSTRAP_SERVERS, else of a local broker started on
    `port` (its controller on the next port) with its data in `home` (a temporary folder,
    removed afterwards, when None) and Kafka's shared jars; the local broker stops on exit."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    data = home or Path(tempfile.mkdtemp(prefix="shopstream-bench-"))
    config = LocalBrokerConfig(
        port=port,
        controller_port=port + 1,
        home=data,
        jars_home=LocalBrokerConfig().home / "jars",
    )
    try:
        if bootstrap is None:
            local_broker.ensure_jars(config)
            bootstrap = local_broker.start(config).bootstrap_servers
        yield bootstrap
    finally:
        local_broker.stop(config)  # a no-op when KAFKA_BOOTSTRAP_SERVERS named another broker
        if home is None:
            shutil.rmtree(data, ignore_errors=True)
