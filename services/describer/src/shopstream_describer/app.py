"""The describer service: settings, generator, pipeline and handler wired onto the runtime."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge

from shopstream.events import Event
from shopstream.kafka_io import read_to_end
from shopstream.runtime.service import BatchService, ModelLifecycle, ServiceContext
from shopstream_describer import __version__
from shopstream_describer.compliance import Lexicons
from shopstream_describer.config import DescriberSettings
from shopstream_describer.handlers import ACCEPTED, DescriberState, build_describer_handler
from shopstream_describer.pipeline import DescriberPipeline, Generator

SERVICE_NAME = "describer"
logger = logging.getLogger("shopstream.describer")


class GeneratorModel(Generator, ModelLifecycle, Protocol):
    """What the service needs from a generator: lifecycle plus batched generation."""


async def restore_state(settings: DescriberSettings, state: DescriberState) -> None:
    """Read the compacted products and descriptions topics to their end, before consuming.

    Outside the consumer group, so every replica holds every tenant's product table (copy
    requests may name any product) and the hash of every published description.
    """
    started = time.perf_counter()
    counts: dict[str, int] = {}
    for topic, kind in (
        (settings.topics.products, "products"),
        (settings.topics.descriptions, "descriptions"),
    ):
        applied = 0
        try:
            async for key, value in read_to_end(settings.kafka, topic):
                loaded = (
                    state.load_product(key, value)
                    if kind == "products"
                    else state.load_description(value)
                )
                applied += loaded
        except LookupError:
            logger.warning("topic missing: starting without it", extra={"topic": topic})
        counts[kind] = applied
    logger.info(
        "describer state restored",
        extra={**counts, "seconds": round(time.perf_counter() - started, 3)},
    )


def build_service(
    settings: DescriberSettings | None = None, *, generator: GeneratorModel | None = None
) -> BatchService[Event]:
    """The describer; `generator` replaces the configured model (tests pass fakes)."""
    settings = settings or DescriberSettings()
    chosen: GeneratorModel | None = generator
    if chosen is None and settings.model.generator:
        # Imported here so that importing the service (CLI, unit tests) does not import torch.
        from shopstream_describer.model import DescriberModel  # noqa: PLC0415

        chosen = DescriberModel(settings.model)
    pipeline = DescriberPipeline(chosen, settings.pipeline_options())
    lexicons = Lexicons(settings.tenant_lexicons, settings.lexicon)
    state = DescriberState()
    registry = CollectorRegistry(auto_describe=True)
    Gauge(
        "shopstream_describer_products",
        "Products in this replica's product table.",
        registry=registry,
    ).set_function(lambda: len(state.products))

    def restore_hook(_: ServiceContext) -> Callable[[], Awaitable[None]]:
        async def restore() -> None:
            await restore_state(settings, state)

        return restore

    return BatchService(
        name=SERVICE_NAME,
        version=__version__,
        settings=settings,
        input_topics=[settings.topics.products, settings.topics.copy_requests],
        output_topics=[settings.topics.descriptions, settings.topics.copies],
        accepts=ACCEPTED,
        build_handler=lambda context: build_describer_handler(
            context, pipeline, state, lexicons, settings.topics
        ),
        model=chosen,
        startup_hooks=[restore_hook],
        registry=registry,
    )
