"""The image tests' engine lookup: CI must fail, not skip, where no container engine answers."""

from __future__ import annotations

import pytest

from support import containers

pytestmark = pytest.mark.unit


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(containers.shutil, "which", lambda _name: None)
    monkeypatch.delenv("KAFKA_REQUIRED", raising=False)
    monkeypatch.delenv("SHOPSTREAM_CONTAINERS_REQUIRED", raising=False)


@pytest.mark.usefixtures("no_engine")
@pytest.mark.parametrize("variable", ["KAFKA_REQUIRED", "SHOPSTREAM_CONTAINERS_REQUIRED"])
def test_no_engine_fails_where_containers_are_required(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "1")
    with pytest.raises(pytest.fail.Exception, match="no container engine"):
        containers.find_engine()


@pytest.mark.usefixtures("no_engine")
def test_no_engine_skips_elsewhere() -> None:
    with pytest.raises(pytest.skip.Exception):
        containers.find_engine()


def test_an_engine_that_does_not_answer_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # `docker` is installed here without an engine: being on PATH proves nothing.
    monkeypatch.setattr(containers.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(containers, "_answers", lambda _cli: False)
    monkeypatch.setenv("KAFKA_REQUIRED", "1")
    with pytest.raises(pytest.fail.Exception):
        containers.find_engine()
