"""The describer service: settings, generator, pipeline and handler wired onto the runtime."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry, Gauge

from shopstream.events import Event
from shopstream.runtime.service import BatchService, ModelLifecycle
from shopstream.runtime.tables import TopicFollower, read_to_end
from shopstream_describer import __version__
from shopstream_describer.compliance import Lexicons
from shopstream_describer.config import DescriberSettings, GeneratorConfig
from shopstream_describer.handlers import ACCEPTED, DescriberState, build_describer_handler
from shopstream_describer.pipeline import DescriberPipeline, Generator
from shopstream_describer.serving import OpenAIChatGenerator
from shopstream_describer.spec import SPEC

logger = logging.getLogger("shopstream.describer")


class GeneratorModel(Generator, ModelLifecycle, Protocol):
    """What the service needs from a generator: lifecycle plus batched generation."""


class GeneratorGroup:
    """Loads and unloads every generator of the pipeline as the service's one model."""

    def __init__(self, generators: Sequence[GeneratorModel]) -> None:
        self.generators = list(generators)

    def load(self) -> None:
        for generator in self.generators:
            generator.load()

    def unload(self) -> None:
        for generator in self.generators:
            generator.unload()


class ProductTable:
    """Every tenant's products, followed from the compacted products topic (global table); a
    service component, read to its end before the first batch and followed until the service
    stops.

    The consumer group gives a replica only some product partitions, but a copy request may
    name any product, and a deletion must reach every replica's skip-unchanged hashes.
    """

    def __init__(self, settings: DescriberSettings, state: DescriberState) -> None:
        self._settings = settings
        self.state = state
        self.rejected = 0
        self.follower = TopicFollower(
            settings.kafka, [settings.topics.products], self._apply, name="describer-products"
        )

    async def _apply(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            if not self.state.load_product(record.key, record.value):
                self.rejected += 1
                logger.warning(
                    "unusable product record skipped",
                    extra={"topic": record.topic, "offset": record.offset},
                )

    async def start(self) -> None:
        """Read the products to their end, then the hashes of the published descriptions."""
        settings = self._settings
        started = time.perf_counter()
        await self.follower.start()
        await self.follower.wait_caught_up(settings.catch_up_timeout_seconds)
        hashes = 0
        try:
            async for key, value in read_to_end(settings.kafka, settings.topics.descriptions):
                hashes += self.state.load_description(value, key)
        except LookupError:
            logger.warning(
                "topic missing: starting without it", extra={"topic": settings.topics.descriptions}
            )
        logger.info(
            "describer state restored",
            extra={
                "products": len(self.state.products),
                "descriptions": hashes,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )

    async def stop(self) -> None:
        await self.follower.stop()

    async def refresh(self) -> bool:
        synced = await self.follower.sync(self._settings.product_sync_seconds)
        if not synced:
            logger.warning("product table behind; copy requests use what it holds")
        return synced


def _generator(config: GeneratorConfig) -> GeneratorModel:
    if config.backend == "openai":
        return OpenAIChatGenerator(config)
    # Imported here so that importing the service (CLI, unit tests) does not import torch.
    from shopstream_describer.model import DescriberModel  # noqa: PLC0415

    return DescriberModel(config)


def build_service(
    settings: DescriberSettings | None = None, *, generator: GeneratorModel | None = None
) -> BatchService[Event]:
    """The describer; `generator` replaces the configured model (tests pass fakes)."""
    settings = settings or DescriberSettings()
    generators: list[GeneratorModel] = [generator] if generator is not None else []
    if generator is None:
        configs = [settings.model] if settings.model.generator else []
        generators = [_generator(config) for config in configs]
    pipeline = DescriberPipeline(generators, settings.pipeline_options())
    lexicons = Lexicons(settings.tenant_lexicons, settings.lexicon)
    state = DescriberState()
    table = ProductTable(settings, state)
    registry = CollectorRegistry(auto_describe=True)
    Gauge(
        "shopstream_describer_products",
        "Products in this replica's product table.",
        registry=registry,
    ).set_function(lambda: len(state.products))
    return BatchService(
        **SPEC.identity(settings, __version__),
        accepts=ACCEPTED,
        build_handler=lambda context: build_describer_handler(
            context, pipeline, state, lexicons, settings.topics, refresh_products=table.refresh
        ),
        model=GeneratorGroup(generators) if generators else None,
        components=[table],
        registry=registry,
    )
