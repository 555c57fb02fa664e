"""The integration tests' real Kafka broker is the `kafka_bootstrap` fixture in `tests/conftest.py`,
shared with the contract tests so one run starts at most one broker."""
