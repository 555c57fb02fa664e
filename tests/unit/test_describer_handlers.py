"""The describer's handler on the in-memory broker: results, skipping, unknown products."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from faststream.kafka import TestKafkaBroker

from shopstream.events import (
    CopyRequested,
    DescriptionGenerated,
    Event,
    ProductDeleted,
    ProductUpserted,
)
from shopstream.runtime.batch import BatchHandler
from shopstream.topics import TopicSettings, dead_letter_topic
from shopstream_describer.app import build_service
from shopstream_describer.compliance import Lexicons
from shopstream_describer.config import DescriberSettings, GeneratorConfig
from shopstream_describer.handlers import DescriberState, build_describer_handler
from shopstream_describer.pipeline import DescriberPipeline, DescriptionJob, DescriptionResult
from support.memory import IN_MEMORY, sink

pytestmark = pytest.mark.unit

TOPICS = TopicSettings()


def product(version: str = "Navy") -> ProductUpserted:
    return ProductUpserted(
        tenant_id="shop",
        payload={
            "product_id": "p1",
            "title": "Canvas Tote",
            "attributes": {"colour": version},
            "target_locales": ["en", "zh"],
        },
    )


def handler_and_state() -> tuple[BatchHandler[Event], DescriberState]:
    service = build_service(DescriberSettings(model=GeneratorConfig(generator=None)))
    state = DescriberState()
    handle = build_describer_handler(
        service.context, DescriberPipeline(None), state, Lexicons(), TOPICS
    )
    return handle, state


async def test_upsert_yields_one_description_per_locale_then_skips_unchanged() -> None:
    handle, state = handler_and_state()
    first = await handle([product()])
    assert sorted(p.event.payload.locale for p in first) == ["en", "zh"]
    assert all(isinstance(p.event, DescriptionGenerated) for p in first)
    assert {p.topic for p in first} == {TOPICS.descriptions}
    again = await handle([product()])
    assert again == []
    changed = await handle([product("Olive")])
    assert len(changed) == 2
    await handle([ProductDeleted(tenant_id="shop", payload={"product_id": "p1"})])
    assert state.products == {}
    assert state.hashes == {}


async def test_results_have_deterministic_ids() -> None:
    event = product()
    first = await handler_and_state()[0]([event])
    second = await handler_and_state()[0]([event])
    assert [p.event.event_id for p in first] == [p.event.event_id for p in second]


async def test_copy_request_for_an_unknown_product_is_dead_lettered() -> None:
    service = build_service(
        DescriberSettings(model=GeneratorConfig(generator=None), kafka=IN_MEMORY)
    )
    request = CopyRequested(
        tenant_id="shop",
        payload={
            "campaign_id": "c1",
            "product_ids": ["nope"],
            "channel": "push",
        },
    )
    dead = sink(service, dead_letter_topic(TOPICS.copy_requests))

    async with TestKafkaBroker(service.broker) as broker:
        await broker.publish(request.to_json(), TOPICS.copy_requests)
    assert len(dead) == 1
    assert "unknown products" in str(dead[0])


async def test_a_deleted_product_is_described_again_when_it_returns_unchanged() -> None:
    handle, state = handler_and_state()
    assert len(await handle([product()])) == 2
    deletion = ProductDeleted(tenant_id="shop", payload={"product_id": "p1"})
    withdrawn = await handle([deletion])
    # Its descriptions leave the compacted topic: one tombstone per published locale.
    assert [(p.topic, p.event, p.key_bytes()) for p in withdrawn] == [
        (TOPICS.descriptions, None, b"shop:p1:en"),
        (TOPICS.descriptions, None, b"shop:p1:zh"),
    ]
    assert state.hashes == {}
    assert await handle([deletion]) == [], "nothing left to withdraw"
    back = await handle([product()])
    assert len(back) == 2, "the hash went with the product, so its return is described"


async def test_only_a_products_last_change_in_a_batch_is_described() -> None:
    handle, state = handler_and_state()
    deletion = ProductDeleted(tenant_id="shop", payload={"product_id": "p1"})
    assert await handle([product("Navy"), deletion]) == [], "deleted in the same batch, unwritten"
    assert state.products == {}
    assert state.hashes == {}
    assert len(await handle([product("Navy")])) == 2
    recreated = await handle([deletion, product("Navy")])
    assert len(recreated) == 2, "a deletion earlier in the batch forgets the hashes"
    latest = await handle([product("Red"), product("Olive")])
    assert {p.event.payload.description.count("Olive") > 0 for p in latest} == {True}
    assert len(latest) == 2


async def test_copy_requests_wait_for_the_product_table_first() -> None:
    service = build_service(DescriberSettings(model=GeneratorConfig(generator=None)))
    state = DescriberState()
    refreshes: list[int] = []

    async def refresh() -> bool:
        # Stands in for the follower reaching a product another replica consumed.
        refreshes.append(1)
        state.load_product(b"shop:p1", product().to_json())
        return True

    handle = build_describer_handler(
        service.context,
        DescriberPipeline(None),
        state,
        Lexicons(),
        TOPICS,
        refresh_products=refresh,
    )
    assert await handle([product()]) != []
    assert refreshes == [], "no copy request, no wait"
    state.products.clear()
    request = CopyRequested(
        tenant_id="shop", payload={"campaign_id": "c1", "product_ids": ["p1"], "channel": "sms"}
    )
    (published,) = await handle([request])
    assert refreshes == [1]
    assert published.topic == TOPICS.copies


async def test_a_batch_keeps_products_the_table_applied_while_it_ran() -> None:
    """The table's follower writes `state.products` while the batch awaits the model; the
    batch must change only its own products (it once wrote a stale copy of the whole table)."""
    service = build_service(DescriberSettings(model=GeneratorConfig(generator=None)))
    state = DescriberState()
    other = ProductUpserted(
        tenant_id="shop", payload={"product_id": "p9", "title": "Linen Apron", "attributes": {}}
    )

    class FollowerMidBatch(DescriberPipeline):
        def describe(self, jobs: Sequence[DescriptionJob]) -> list[DescriptionResult]:
            # What the follower does on another task while inference runs.
            state.load_product(b"shop:p9", other.to_json())
            return super().describe(jobs)

    handle = build_describer_handler(
        service.context, FollowerMidBatch(None), state, Lexicons(), TOPICS
    )
    assert len(await handle([product()])) == 2
    assert set(state.products) == {("shop", "p1"), ("shop", "p9")}


def test_the_product_table_applies_upserts_deletions_and_tombstones() -> None:
    state = DescriberState()
    assert state.load_product(b"shop:p1", product().to_json())
    state.hashes["shop", "p1", "en"] = "sha256:x"
    assert state.load_product(b"shop:p1", None), "a tombstone forgets the product"
    assert state.products == {}
    assert state.hashes == {}
    assert state.load_product(b"shop:p1", product().to_json())
    deletion = ProductDeleted(tenant_id="shop", payload={"product_id": "p1"})
    assert state.load_product(b"shop:p1", deletion.to_json())
    assert state.products == {}
    assert not state.load_product(b"no-colon", None)
    assert not state.load_product(b"shop:p1", b"{not json")


def test_published_hashes_are_restored_only_for_products_still_in_the_table() -> None:
    state = DescriberState()
    described = DescriptionGenerated(
        tenant_id="shop",
        lineage={"model_id": "m", "model_revision": "r"},
        payload={
            "product_id": "p1",
            "locale": "en",
            "description": "A tote.",
            "content_hash": "sha256:abc",
            "quality": {
                "attribute_coverage": 1.0,
                "path": "composed",
                "attempts": 0,
                "review_required": False,
            },
        },
    )
    assert not state.load_description(described.to_json()), "product deleted meanwhile"
    state.load_product(b"shop:p1", product().to_json())
    assert state.load_description(described.to_json())
    assert state.hashes == {("shop", "p1", "en"): "sha256:abc"}


def test_generator_none_turns_generation_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESCRIBER_MODEL__GENERATOR", "none")
    assert DescriberSettings().model.generator is None
    monkeypatch.setenv("DESCRIBER_MODEL__GENERATOR", "")
    assert DescriberSettings().model.generator is not None, "empty means the default"
