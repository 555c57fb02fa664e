"""The describer under the service contract, on its composer path (no generator, no weights)."""

from __future__ import annotations

import json
from typing import cast

from contract.base import (
    AnyService,
    Rejected,
    StatefulServiceContract,
    common_settings,
)
from shopstream.events import CopyRequested, Event, ProductUpserted
from shopstream.kafka_io import publish_events
from shopstream.settings import KafkaSettings, ServiceSettings
from shopstream_describer.app import build_service
from shopstream_describer.config import DescriberSettings, GeneratorConfig
from support.kafka import collect, prefixed_topics, records_to_end

TENANT = "contract-shop"


def product(product_id: str, colour: str = "Navy") -> ProductUpserted:
    return ProductUpserted(
        tenant_id=TENANT,
        payload={
            "product_id": product_id,
            "title": "Canvas Tote Bag",
            "brand": "Acme",
            "attributes": {"colour": colour, "material": "Canvas"},
            "target_locales": ["en"],
        },
    )


class TestDescriberContract(StatefulServiceContract):
    name = "describer"
    input = "products"
    output = "descriptions"

    def settings(self, kafka: KafkaSettings, prefix: str) -> ServiceSettings:
        return DescriberSettings(
            topics=prefixed_topics(prefix, "products", "copy_requests", "descriptions", "copies"),
            **common_settings(kafka, prefix),
            # The composer path: descriptions without a generator, so no model to load.
            model=GeneratorConfig(generator=None),
        )

    def build(self, settings: ServiceSettings) -> AnyService:
        return build_service(cast("DescriberSettings", settings))

    def valid_event(self, index: int) -> Event:
        return product(f"bag-{index}")

    def rejected(self, settings: ServiceSettings) -> Rejected:
        # A campaign naming a product the table does not hold is refused by the handler.
        request = CopyRequested(
            tenant_id=TENANT,
            payload={"campaign_id": "c1", "product_ids": ["no-such-bag"], "channel": "push"},
        )
        return Rejected(request.to_json(), "processing_error", settings.topics.copy_requests)

    # The product table and the skip-unchanged hashes are read back from the products and
    # descriptions topics on start.

    async def seed_state(self, service: AnyService, settings: ServiceSettings) -> None:
        kafka, topics = settings.kafka, settings.topics
        await publish_events(kafka, topics.products, [product("kept")])
        await collect(kafka, topics.descriptions, 1, within=30)

    async def check_state_restored(self, service: AnyService, settings: ServiceSettings) -> None:
        kafka, topics = settings.kafka, settings.topics
        # The unchanged product, re-sent as a new event, then a new one (one partition: in order).
        await publish_events(kafka, topics.products, [product("kept"), product("new")])
        await collect(kafka, topics.descriptions, 2, within=30)
        described = [
            json.loads(record.value)["payload"]["product_id"]
            for record in await records_to_end(kafka, topics.descriptions)
        ]
        assert described == ["kept", "new"], "the unchanged product was not described again"
