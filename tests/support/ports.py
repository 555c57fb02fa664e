"""Loopback ports for the brokers tests start.

Every port is an offset from one base (`SHOPSTREAM_TEST_PORT_BASE`, default 19000) so two test
runs on one machine, e.g. two developers' checkouts, can each pick a free range instead of
fighting over fixed ports.
"""

from __future__ import annotations

import os

DEFAULT_BASE = 19_000


def broker_port(offset: int) -> int:
    """The port `offset` above the base; brokers take `offset` and `offset + 1` (controller)."""
    return int(os.environ.get("SHOPSTREAM_TEST_PORT_BASE", DEFAULT_BASE)) + offset
