"""The describer's `openai` backend against a fake OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from shopstream_describer.config import GeneratorConfig
from shopstream_describer.generation import GenerationRequest
from shopstream_describer.serving import OpenAIChatGenerator, OpenAIServerConfig, OpenAIServerError

pytestmark = pytest.mark.unit


class FakeOpenAIServer:
    """A fake engine: answers ``/v1/models`` and ``/v1/chat/completions`` with the user message
    echoed, after the scripted error statuses (one per request) are used up."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.delay: Callable[[dict[str, Any]], float] = lambda _body: 0.0
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def _send(self, status: int, document: object) -> None:
                raw = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                if self.path != "/v1/models":
                    self._send(404, {"error": "not found"})
                    return
                self._send(200, {"object": "list", "data": [{"id": "fake-model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.bodies.append(body)
                    fake.headers.append(dict(self.headers))
                    status = fake.statuses.pop(0) if fake.statuses else 200
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    time.sleep(fake.delay(body))
                finally:
                    with fake._lock:
                        fake.in_flight -= 1
                if status != 200:
                    self._send(status, {"error": {"message": f"scripted {status}"}})
                    return
                content = f"echo: {body['messages'][-1]['content']}"
                message = {"role": "assistant", "content": content}
                self._send(200, {"choices": [{"index": 0, "message": message}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @property
    def chat_requests(self) -> int:
        return len(self.bodies)


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    fake = FakeOpenAIServer()
    thread = threading.Thread(target=fake.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.httpd.shutdown()
        fake.httpd.server_close()
        thread.join(5)


def config_for(base_url: str, **server: Any) -> GeneratorConfig:
    return GeneratorConfig(
        backend="openai",
        languages=["en", "zh"],
        server=OpenAIServerConfig(
            base_url=base_url,
            served_model="fake-model",
            retry_backoff_seconds=0.01,
            **server,
        ),
    )


@pytest.fixture
def generator_on(fake_server: FakeOpenAIServer) -> Iterator[Callable[..., OpenAIChatGenerator]]:
    started: list[OpenAIChatGenerator] = []

    def start(config: GeneratorConfig | None = None, **server: Any) -> OpenAIChatGenerator:
        generator = OpenAIChatGenerator(config or config_for(fake_server.base_url, **server))
        generator.load()
        started.append(generator)
        return generator

    yield start
    for generator in started:
        generator.unload()


def prompt(text: str) -> tuple[dict[str, str], ...]:
    return ({"role": "system", "content": "rules"}, {"role": "user", "content": text})


def request(*texts: str, attempt: int = 1, max_new_tokens: int = 8) -> GenerationRequest:
    return GenerationRequest(
        [prompt(text) for text in texts], attempt=attempt, max_new_tokens=max_new_tokens
    )


def test_results_keep_the_prompts_order_while_requests_overlap(fake_server, generator_on):
    count = 12
    # Later prompts answer sooner, so completion order is the reverse of the prompts' order.
    fake_server.delay = lambda body: (count - int(body["messages"][-1]["content"])) * 0.02
    generator = generator_on(concurrency=4)
    texts = generator.generate(request(*map(str, range(count))))
    assert texts == [f"echo: {i}" for i in range(count)]
    assert 1 < fake_server.max_in_flight <= 4


def test_first_attempt_is_greedy_and_retries_sample_with_a_seed(fake_server, generator_on):
    generator = generator_on(api_key=SecretStr("s3cret"))
    generator.generate(request("a", max_new_tokens=16))
    generator.generate(request("b", attempt=3, max_new_tokens=32))
    greedy, sampled = fake_server.bodies
    config = generator.config
    assert greedy == {
        "model": "fake-model",
        "messages": [{"role": "system", "content": "rules"}, {"role": "user", "content": "a"}],
        "max_tokens": 16,
        "stream": False,
        "temperature": 0.0,
    }
    assert sampled["temperature"] == config.temperature
    assert sampled["top_p"] == config.top_p
    assert sampled["seed"] == config.seed + 3
    assert sampled["max_tokens"] == 32
    assert fake_server.headers[0]["Authorization"] == "Bearer s3cret"
    assert generator.model_id == "fake-model"
    assert generator.supports("zh-CN")
    assert not generator.supports("de")


def test_first_attempt_sampling_and_engine_fields(fake_server, generator_on):
    config = config_for(fake_server.base_url, extra_body={"repeat_penalty": 1.1})
    generator = generator_on(config.model_copy(update={"first_attempt_sampling": True}))
    generator.generate(request("a"))
    (body,) = fake_server.bodies
    assert body["seed"] == config.seed + 1
    assert body["temperature"] == config.temperature
    assert body["repeat_penalty"] == 1.1


def test_503_is_retried_until_the_server_answers(fake_server, generator_on):
    fake_server.statuses = [503, 503]
    generator = generator_on(max_retries=3)
    assert generator.generate(request("x")) == ["echo: x"]
    assert fake_server.chat_requests == 3


def test_retries_are_bounded(fake_server, generator_on):
    fake_server.statuses = [500] * 10
    generator = generator_on(max_retries=2)
    with pytest.raises(OpenAIServerError, match=r"failed 3 times for model 'fake-model': 500"):
        generator.generate(request("x"))
    assert fake_server.chat_requests == 3


def test_400_is_not_retried_and_says_why(fake_server, generator_on):
    fake_server.statuses = [400]
    generator = generator_on(max_retries=3)
    with pytest.raises(OpenAIServerError, match=r"answered 400 .*not retried.*scripted 400"):
        generator.generate(request("x"))
    assert fake_server.chat_requests == 1


def test_load_fails_clearly_when_no_server_answers():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    generator = OpenAIChatGenerator(config_for(url, timeout_seconds=2))
    with pytest.raises(
        OpenAIServerError, match=f"no OpenAI-compatible server answers at {url}/models"
    ):
        generator.load()
    with pytest.raises(RuntimeError, match="before load"):
        generator.generate(request("x"))


def test_load_fails_on_an_error_status(fake_server):
    generator = OpenAIChatGenerator(config_for(fake_server.base_url + "/missing"))
    with pytest.raises(OpenAIServerError, match=r"/missing/models answered 404"):
        generator.load()


def test_settings_from_the_environment_build_it_without_torch():
    code = (
        "import sys; from shopstream_describer.app import build_service; "
        "from shopstream_describer.serving import OpenAIChatGenerator; "
        "service = build_service(); (generator,) = service._model.generators; "
        "assert isinstance(generator, OpenAIChatGenerator), generator; "
        "assert generator.server.base_url == 'http://vllm:8000/v1'; "
        "assert generator.model_id == 'Qwen/Qwen2.5-7B-Instruct'; "
        "assert generator.supports('zh'); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    env = {
        **os.environ,
        "DESCRIBER_MODEL__BACKEND": "openai",
        "DESCRIBER_MODEL__SERVER__BASE_URL": "http://vllm:8000/v1",
        "DESCRIBER_MODEL__SERVER__SERVED_MODEL": "Qwen/Qwen2.5-7B-Instruct",
        "DESCRIBER_MODEL__LANGUAGES": '["en","zh"]',
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    assert done.returncode == 0, done.stderr
