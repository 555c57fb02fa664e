"""The echo service: the full runtime with a no-op model.

It republishes each `review.submitted` with a deterministic id on an output topic. The demo, the
runtime's integration tests and the bus benchmark use it to measure the bus path alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pydantic_settings import SettingsConfigDict

from shopstream import __version__
from shopstream.events import ReviewSubmitted, result_id
from shopstream.runtime.batch import BatchHandler, Publication
from shopstream.runtime.service import BatchService, ServiceContext
from shopstream.services import ServiceSpec, TopicUse
from shopstream.settings import ServiceSettings

SERVICE_NAME = "echo"


class EchoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ECHO_")

    input_topic: str = "shop.reviews.submitted"
    output_topic: str = "shop.reviews.echo"
    delay_ms: int = 0
    """Pretend each batch takes this long in the model (to test slow batches and crashes)."""
    fail_marker: str | None = None
    """Reviews whose text contains this marker raise in the handler (to exercise bisection)."""


class NoOpModel:
    """Stands in for a model: identity on its inputs, batched like a real one."""

    def __init__(self, delay_ms: int = 0) -> None:
        self._delay_seconds = delay_ms / 1000

    def load(self) -> None:
        return None

    def predict_batch(self, texts: Sequence[str]) -> list[str]:
        if self._delay_seconds:
            time.sleep(self._delay_seconds)
        return list(texts)

    def unload(self) -> None:
        return None


def build_echo_service(settings: EchoSettings | None = None) -> BatchService[ReviewSubmitted]:
    settings = settings or EchoSettings()
    model = NoOpModel(settings.delay_ms)

    def build_handler(context: ServiceContext) -> BatchHandler[ReviewSubmitted]:
        async def handle(events: Sequence[ReviewSubmitted]) -> list[Publication]:
            texts = [event.payload.text for event in events]
            if settings.fail_marker and any(settings.fail_marker in text for text in texts):
                raise ValueError("review text carries the configured failure marker")
            await context.inference.run(model.predict_batch, texts)
            return [
                Publication(
                    settings.output_topic,
                    event.derive(
                        event_id=result_id(f"echo|{event.event_id}"),
                        causation_id=event.event_id,
                        producer=context.producer,
                    ),
                )
                for event in events
            ]

        return handle

    return BatchService(
        **SPEC.identity(settings, __version__),
        accepts=ReviewSubmitted,
        build_handler=build_handler,
        model=model,
    )


def _topic_use(settings: EchoSettings) -> TopicUse:
    return TopicUse(consumes=(settings.input_topic,), produces=(settings.output_topic,))


SPEC = ServiceSpec(
    name=SERVICE_NAME,
    settings=EchoSettings,
    topics=_topic_use,
    factory="shopstream.echo:build_echo_service",
    # Its two topics are its own settings, not the shared registry, and it ships no image:
    # it measures the bus path (demo step 1, the runtime's tests, the bus benchmark).
    shares_registry=False,
    image=False,
)
