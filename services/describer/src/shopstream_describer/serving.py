"""Generation on a serving engine (vLLM, TGI, llama.cpp, Ollama) over the OpenAI chat API.

The describer stays the Kafka consumer and the grounding gate; only the completions come from
``POST {base_url}/chat/completions``, sent concurrently from a thread pool (``generate`` runs in
the service's inference thread, never on the event loop). Torch-free.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

if TYPE_CHECKING:
    from shopstream_describer.config import GeneratorConfig
    from shopstream_describer.generation import GenerationRequest
    from shopstream_describer.prompts import ChatPrompt

logger = logging.getLogger("shopstream.describer")

_MAX_BACKOFF_SECONDS = 30.0
_ERROR_BODY_CHARS = 300


class OpenAIServerConfig(BaseModel):
    """Where the OpenAI-compatible server is and how the describer talks to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = "http://localhost:8000/v1"
    """The API root, ``/v1`` included: ``http://vllm:8000/v1``, ``http://ollama:11434/v1``."""
    api_key: SecretStr | None = None
    """Sent as ``Authorization: Bearer ...`` (vLLM's ``--api-key``); unset sends none."""
    served_model: str | None = None
    """The model name each request names (vLLM's ``--served-model-name``, an Ollama tag); also
    the results' lineage ``model_id``. Unset: the ``generator`` setting."""
    revision: str | None = None
    """Lineage ``model_revision`` of what the server runs (a commit, a quantisation): a new
    label makes every text stale. Unset: the ``revision`` setting, else ``unknown``."""
    concurrency: int = Field(default=8, ge=1, le=256)
    """Requests in flight at once; the engine batches them (vLLM, TGI) or queues them."""
    timeout_seconds: float = Field(default=60.0, gt=0)
    """Per request: connect, each read and the start-up check of ``/models``."""
    max_retries: int = Field(default=3, ge=0, le=10)
    """Retries of one request after a connect error, a timeout, 429 or 5xx; any other 4xx is
    the request's own fault and fails at once."""
    retry_backoff_seconds: float = Field(default=0.5, ge=0, le=_MAX_BACKOFF_SECONDS)
    """Wait before the first retry, doubled for each further one; a ``Retry-After`` header of
    a 429 or 503 is honoured up to 30 s."""
    extra_body: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Engine-specific fields merged into every request, e.g. ``{"repetition_penalty": 1.1}``
    for vLLM or ``{"repeat_penalty": 1.1}`` for llama.cpp (the OpenAI API has neither)."""


class OpenAIServerError(RuntimeError):
    """The server is unreachable, refused a request, or gave up after the retries."""


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(float(response.headers["retry-after"]), _MAX_BACKOFF_SECONDS)
    except (KeyError, ValueError):
        return None


class OpenAIChatGenerator:
    """The pipeline's `Generator` on an OpenAI-compatible ``/chat/completions`` endpoint.

    `transport` replaces the network (tests pass ``httpx.MockTransport``).
    """

    def __init__(
        self, config: GeneratorConfig, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        model = config.server.served_model or config.generator
        if not model:
            raise ValueError("the openai backend needs server.served_model (or generator)")
        self.config = config
        self.server = config.server
        self._model = model
        self._transport = transport
        self._client: httpx.Client | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def model_id(self) -> str:
        return self._model

    @property
    def model_revision(self) -> str:
        return self.server.revision or self.config.revision or "unknown"

    def supports(self, locale: str) -> bool:
        return locale.split("-", 1)[0] in self.config.languages

    def load(self) -> None:
        """Open the connection pool and check that the server answers ``GET /models``."""
        server = self.server
        headers = {"Accept": "application/json"}
        if server.api_key is not None:
            headers["Authorization"] = f"Bearer {server.api_key.get_secret_value()}"
        client = httpx.Client(
            base_url=server.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=server.timeout_seconds,
            limits=httpx.Limits(max_connections=server.concurrency),
            transport=self._transport,
        )
        url = f"{client.base_url}models"
        try:
            response = client.get("models")
        except httpx.TransportError as error:
            client.close()
            raise OpenAIServerError(
                f"no OpenAI-compatible server answers at {url} within "
                f"{server.timeout_seconds:g} s: {error!r}"
            ) from error
        if response.is_error:
            client.close()
            raise OpenAIServerError(
                f"{url} answered {response.status_code}: {response.text[:_ERROR_BODY_CHARS]}"
            )
        served = self._served_models(response)
        if served is not None and self._model not in served:
            logger.warning(
                "served model not listed by the server",
                extra={"model": self._model, "listed": served[:10], "url": url},
            )
        self._client = client
        self._pool = ThreadPoolExecutor(server.concurrency, thread_name_prefix="describer-http")
        logger.info(
            "serving engine answers",
            extra={"url": str(client.base_url), "model": self._model, "listed": served},
        )

    def unload(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def generate(self, request: GenerationRequest) -> list[str]:
        """One completion per prompt, in the prompts' order, `concurrency` requests at a time.

        `avoid` is not sent: the OpenAI API can only bias single token ids, which this side
        does not know; the gate checks every completion either way."""
        if self._pool is None or self._client is None:
            raise RuntimeError("OpenAIChatGenerator.generate before load()")
        client = self._client
        bodies = [
            self.request_body(prompt, request.attempt, request.max_new_tokens)
            for prompt in request.prompts
        ]
        return list(self._pool.map(lambda body: self._complete(client, body), bodies))

    def request_body(self, prompt: ChatPrompt, attempt: int, max_new_tokens: int) -> dict[str, Any]:
        """Greedy on a first attempt (unless configured otherwise), seeded sampling after."""
        config = self.config
        sample = attempt > 1 or config.first_attempt_sampling
        body: dict[str, Any] = {
            **self.server.extra_body,
            "model": self._model,
            "messages": [dict(message) for message in prompt],
            "max_tokens": max_new_tokens,
            "stream": False,
        }
        if sample:
            body |= {"temperature": config.temperature, "top_p": config.top_p}
            body["seed"] = config.seed + attempt
        else:
            body["temperature"] = 0.0
        return body

    def _complete(self, client: httpx.Client, body: Mapping[str, Any]) -> str:
        server = self.server
        url = f"{client.base_url}chat/completions"
        failure = ""
        for retry in range(server.max_retries + 1):
            wait = server.retry_backoff_seconds * 2**retry
            try:
                response = client.post("chat/completions", json=body)
            except httpx.TransportError as error:
                failure = repr(error)
            else:
                if not response.is_error:
                    return self._content(response, url)
                detail = response.text[:_ERROR_BODY_CHARS]
                if not _retryable(response.status_code):
                    raise OpenAIServerError(
                        f"{url} answered {response.status_code} for model {self._model!r} "
                        f"(not retried): {detail}"
                    )
                failure = f"{response.status_code}: {detail}"
                wait = max(wait, _retry_after(response) or 0.0)
            if retry < server.max_retries:
                logger.warning(
                    "chat completion failed; retrying",
                    extra={"url": url, "failure": failure, "retry": retry + 1, "wait": wait},
                )
                time.sleep(min(wait, _MAX_BACKOFF_SECONDS))
        raise OpenAIServerError(
            f"{url} failed {server.max_retries + 1} times for model {self._model!r}: {failure}"
        )

    @staticmethod
    def _content(response: httpx.Response, url: str) -> str:
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, LookupError, TypeError) as error:
            raise OpenAIServerError(
                f"{url} answered something other than a chat completion: "
                f"{response.text[:_ERROR_BODY_CHARS]}"
            ) from error
        return content if isinstance(content, str) else ""

    @staticmethod
    def _served_models(response: httpx.Response) -> list[str] | None:
        try:
            return [str(item["id"]) for item in response.json()["data"]]
        except (ValueError, LookupError, TypeError):
            return None
