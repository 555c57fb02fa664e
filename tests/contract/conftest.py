"""Fixtures of the contract tests; the real broker is `kafka_bootstrap` (`tests/conftest.py`)."""

from __future__ import annotations

import pytest

from shopstream.settings import KafkaSettings


@pytest.fixture
def kafka(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=kafka_bootstrap)
