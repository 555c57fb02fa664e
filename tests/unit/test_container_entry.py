"""The service images' entry point (`python -m shopstream.container`): which service it serves,
where it listens, and its health check against a real HTTP server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shopstream import container, services
from shopstream.services import discover

pytestmark = pytest.mark.unit


class _Liveness(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health/live" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the hook's signature
        pass


@pytest.fixture
def live_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Liveness)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_every_installed_service_reads_the_prefix_the_image_derives() -> None:
    for name, spec in discover().items():
        assert spec.settings.model_config.get("env_prefix") == container.env_prefix(name)


def test_the_health_check_asks_the_port_of_the_service_setting(live_port: int) -> None:
    environ = {"SHOPSTREAM_SERVICE": "sentiment", "SENTIMENT_HTTP_PORT": str(live_port)}
    assert container.liveness_url(environ) == f"http://127.0.0.1:{live_port}/health/live"
    assert container.probe(environ) == 0
    # Another service's port variable is not read: the probe goes to 8000, where nothing answers
    # in this test, or to whatever listens there; either way not this server.
    other = {"SHOPSTREAM_SERVICE": "describer", "SENTIMENT_HTTP_PORT": str(live_port)}
    assert container.liveness_url(other) == "http://127.0.0.1:8000/health/live"


def test_the_health_check_fails_when_nothing_answers(live_port: int) -> None:
    closed = {"SHOPSTREAM_SERVICE": "sentiment", "SENTIMENT_HTTP_PORT": "1"}
    assert container.probe(closed, timeout=1.0) == 1


def test_without_a_service_it_says_how_to_build_the_image() -> None:
    with pytest.raises(SystemExit, match="--build-arg SERVICE="):
        container.service_name({})
    assert container.main(["nonsense"]) == 2


def test_it_serves_on_all_interfaces_unless_the_service_setting_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: list[tuple[str, str | None]] = []

    def fake_serve(name: str) -> None:  # stands in for the blocking service loop
        served.append((name, environ.get("SENTIMENT_HTTP_HOST")))

    monkeypatch.setattr(services, "serve", fake_serve)
    environ: dict[str, str] = {"SHOPSTREAM_SERVICE": "sentiment"}
    container.run(environ)
    environ = {"SHOPSTREAM_SERVICE": "sentiment", "SENTIMENT_HTTP_HOST": "10.0.0.7"}
    container.run(environ)
    assert served == [("sentiment", "0.0.0.0"), ("sentiment", "10.0.0.7")]


def test_an_unknown_service_is_refused_before_anything_starts() -> None:
    with pytest.raises(LookupError, match="unknown service 'nope'"):
        container.run({"SHOPSTREAM_SERVICE": "nope"})
