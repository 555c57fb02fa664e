"""KAFKA_* environment variables to server.properties, as the cp-kafka image maps them.

KAFKA_LOG_DIRS -> log.dirs; `__` stands for `_` and `___` for `-`. Defaults suit one node.
"""

import os

SKIP = {"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_LOG4J_OPTS"}
DEFAULTS = {
    "log.dirs": "/var/lib/kafka/data",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "background.threads": "2",
    "log.cleaner.dedupe.buffer.size": "16777216",
}


def property_name(variable: str) -> str:
    name = variable.removeprefix("KAFKA_").lower()
    return name.replace("___", "-").replace("__", "\0").replace("_", ".").replace("\0", "_")


def main() -> None:
    properties = dict(DEFAULTS)
    for variable, value in sorted(os.environ.items()):
        if variable.startswith("KAFKA_") and variable not in SKIP:
            properties[property_name(variable)] = value
    print("\n".join(f"{key}={value}" for key, value in properties.items()))


main()
