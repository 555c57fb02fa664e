"""The development broker: a real single-node Kafka on 127.0.0.1 for the demo, tests and benches.

``broker`` runs its lifecycle (jars, start, status, stop, reset); ``security`` turns on SASL/SCRAM,
ACLs and optional TLS for it. Nothing in the services imports this package: production points
``KAFKA_BOOTSTRAP_SERVERS`` at a real cluster.
"""

from shopstream.devbroker.broker import (
    BrokerStatus,
    LocalBrokerConfig,
    LocalBrokerError,
    PortInUseError,
    ensure_jars,
    log_path,
    reset,
    start,
    status,
    stop,
)
from shopstream.devbroker.security import BrokerSecurity, ScramUser

__all__ = [
    "BrokerSecurity",
    "BrokerStatus",
    "LocalBrokerConfig",
    "LocalBrokerError",
    "PortInUseError",
    "ScramUser",
    "ensure_jars",
    "log_path",
    "reset",
    "start",
    "status",
    "stop",
]
