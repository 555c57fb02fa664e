"""The recommender's handler, catalogue table and service on fakes and the in-memory broker."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from aiokafka import ConsumerRecord
from faststream.kafka import TestKafkaBroker

from shopstream.events import (
    ActivityKind,
    ActivityRecorded,
    ProductDeleted,
    ProductUpserted,
    RecommendationsProduced,
    ReviewSubmitted,
)
from shopstream.runtime.batch import Publication
from shopstream.runtime.service import BatchService
from shopstream.topics import TopicSettings, dead_letter_topic
from shopstream_recommender.app import RecommenderCore, build_service, lineage_for
from shopstream_recommender.catalogue import CatalogueFollower, item_text
from shopstream_recommender.config import RecommenderSettings
from shopstream_recommender.handlers import (
    MAX_CLOCK_SKEW_SECONDS,
    RecommenderInput,
    build_handler,
    interaction_of,
    latest_event_time,
)
from shopstream_recommender.state import Item
from support.memory import IN_MEMORY, sink
from support.recommender import FakeEmbedder, activity, request, upsert

pytestmark = pytest.mark.unit

TOPICS = TopicSettings()


def settings(**overrides: Any) -> RecommenderSettings:
    values: dict[str, Any] = {"create_topics": False, "http_port": 0, "kafka": IN_MEMORY}
    return RecommenderSettings(**(values | overrides))


def core(service: BatchService[RecommenderInput]) -> RecommenderCore:
    return service.component(RecommenderCore)


def make_service(**overrides: Any) -> BatchService[RecommenderInput]:
    return build_service(settings(**overrides), embedder=FakeEmbedder())


def handler_for(service: BatchService[RecommenderInput], **options: Any) -> Any:
    return build_handler(
        service.context,
        core(service).ranker,
        lineage=lineage_for(FakeEmbedder()),
        results_topic=TOPICS.recs_results,
        **options,
    )


def results(publications: Sequence[Publication]) -> list[RecommendationsProduced]:
    events = [p.event for p in publications]
    assert all(p.topic == TOPICS.recs_results for p in publications)
    assert all(isinstance(event, RecommendationsProduced) for event in events)
    return events  # type: ignore[return-value]


def shoppers_go_from_kettle_to_teapot() -> list[ActivityRecorded]:
    return [
        event
        for shopper in range(4)
        for event in (activity(f"u{shopper}", "kettle"), activity(f"u{shopper}", "teapot"))
    ]


async def test_a_request_sees_the_activity_before_it_in_the_same_batch() -> None:
    service = make_service()
    handle = handler_for(service)
    history = [*shoppers_go_from_kettle_to_teapot(), activity("me", "kettle")]
    asked = request("me", count=3, placement="home")
    batch = [*history, asked]
    (answer,) = results(await handle(batch))
    assert answer.payload.request_id == asked.payload.request_id
    assert answer.payload.user_id == "me"
    assert not answer.payload.cold_start
    assert answer.payload.items[0].product_id == "teapot"
    assert answer.payload.items[0].reason == "often viewed next after kettle"
    assert answer.causation_id == asked.event_id
    assert answer.correlation_id == asked.payload.request_id
    assert answer.lineage.model_id == "shopstream-blend-4+fake-encoder"
    assert answer.message_key() == "shop-a:me"
    assert answer.producer is not None
    assert answer.producer.name == "recommender"


async def test_a_batch_is_answered_in_event_time_order_whatever_the_record_order() -> None:
    service = make_service()
    handle = handler_for(service)
    start = datetime.now(UTC) - timedelta(minutes=5)

    def at(event: Any, seconds: int) -> Any:
        return event.model_copy(update={"occurred_at": start + timedelta(seconds=seconds)})

    history = [at(event, 0) for event in shoppers_go_from_kettle_to_teapot()]
    asked = at(request("me", count=3), 10)
    # The request's topic was fetched first, but the kettle view happened before the request
    # and the dress view after it: only the kettle view may shape the answer.
    batch = [*history, asked, at(activity("me", "dress"), 20), at(activity("me", "kettle"), 5)]
    (answer,) = results(await handle(batch))
    assert answer.payload.items[0].product_id == "teapot"
    assert all("dress" not in item.reason for item in answer.payload.items)
    user = core(service).state.user("shop-a", "me")
    assert user is not None
    assert [visit.product_id for visit in user.history] == ["kettle", "dress"]


async def test_a_redelivered_batch_counts_nothing_twice_and_keeps_result_ids() -> None:
    service = make_service()
    handle = handler_for(service)
    batch = [*shoppers_go_from_kettle_to_teapot(), request("me")]
    first = results(await handle(batch))
    interactions = core(service).state.interactions
    second = results(await handle(batch))
    assert core(service).state.interactions == interactions
    assert core(service).state.duplicates == 8
    assert [e.event_id for e in second] == [e.event_id for e in first]


async def test_a_new_shopper_gets_a_cold_start_answer_and_an_empty_shop_an_empty_one() -> None:
    service = make_service()
    handle = handler_for(service)
    batch = [*shoppers_go_from_kettle_to_teapot(), request("stranger"), request("x", "shop-b")]
    stranger, other_shop = results(await handle(batch))
    assert stranger.payload.cold_start
    assert {item.product_id for item in stranger.payload.items} == {"kettle", "teapot"}
    assert {item.reason for item in stranger.payload.items} <= {
        "popular in this shop",
        "trending in this shop",
    }
    assert other_shop.payload.items == []
    assert other_shop.tenant_id == "shop-b"


async def test_fresh_recommendations_after_a_purchase_only_when_configured() -> None:
    service = make_service()
    batch = [*shoppers_go_from_kettle_to_teapot(), activity("me", "kettle", "purchase")]
    assert results(await handler_for(service)(batch)) == []
    eager = make_service()
    (unasked,) = results(
        await handler_for(eager, emit_after=[ActivityKind.PURCHASE], emit_count=2)(batch)
    )
    assert unasked.payload.request_id is None
    assert unasked.payload.items[0].product_id == "teapot"
    assert "kettle" not in {item.product_id for item in unasked.payload.items}, "just bought"
    assert unasked.causation_id == batch[-1].event_id


async def test_a_long_title_is_cut_to_fit_the_reason_field() -> None:
    service = make_service()
    title = "K" * 512
    core(service).state.upsert_product("shop-a", "kettle", Item(title=title))
    batch = [*shoppers_go_from_kettle_to_teapot(), activity("me", "kettle"), request("me")]
    (answer,) = results(await handler_for(service)(batch))
    assert len(answer.payload.items[0].reason) == 512


def product_record(event: ProductUpserted | ProductDeleted | None, key: str) -> Any:
    return ConsumerRecord(
        topic=TOPICS.products,
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=key.encode(),
        value=None if event is None else event.to_json(),
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=0,
        headers=[],
    )


async def test_the_catalogue_table_applies_upserts_deletes_tombstones_and_embeds_in_batches() -> (
    None
):
    service = make_service()
    embedder = FakeEmbedder()

    async def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return embedder.predict_batch(texts)

    follower = CatalogueFollower(
        core(service).settings.kafka,
        TOPICS.products,
        core(service).state,
        embed_batch=2,
        embed=embed,
    )
    records = [
        upsert("p1", "Red dress", category="dresses", attributes={"colour": "red"}),
        upsert("p2", "Blue dress", category="dresses"),
        upsert("p3", "Drill", available=False),
        upsert("p1", "Red dress", category="dresses", attributes={"colour": "red"}),
        ProductDeleted(tenant_id="shop-a", payload={"product_id": "p2"}),
    ]
    follower.apply([product_record(event, f"shop-a:{i}") for i, event in enumerate(records)])
    follower.apply([product_record(None, "shop-a:p3"), product_record(None, "garbage")])
    broken = dataclasses.replace(product_record(upsert("p9", "x"), "shop-a:p9"), value=b"{}")
    follower.apply([broken])
    tenant = core(service).state.tenant("shop-a")
    assert set(tenant.catalogue) == {"p1"}
    assert tenant.deleted == {"p2", "p3"}
    assert follower.stats.rejected == 1
    assert follower.pending_embeddings == 1, "p1 once; p2 deleted; p3 deleted"
    await follower.embed_pending()
    assert embedder.batches == [1]
    assert "p1" in tenant.vectors
    repriced = upsert(
        "p1",
        "Red dress",
        category="dresses",
        attributes={"colour": "red"},
        price={"amount": 5, "currency": "EUR"},
    )
    follower.apply([product_record(repriced, "shop-a:p1")])
    assert follower.pending_embeddings == 0, "a price change does not re-embed"


def test_item_text_holds_what_a_shopper_compares() -> None:
    text = item_text(
        upsert(
            "p", "Linen shirt", brand="Acme", category="shirts", attributes={"fit": "slim"}
        ).payload
    )
    assert text == "Linen shirt | Acme | shirts | fit: slim"


async def test_service_on_the_in_memory_broker_answers_and_dead_letters() -> None:
    service = make_service()
    received = {
        "results": sink(service, TOPICS.recs_results),
        "dead_activity": sink(service, dead_letter_topic(TOPICS.activity)),
        "dead_requests": sink(service, dead_letter_topic(TOPICS.recs_requests)),
    }

    bad_kind = json.loads(activity("me", "kettle").to_json())
    bad_kind["payload"]["kind"] = "teleport"
    review = ReviewSubmitted(
        tenant_id="shop-a", payload={"review_id": "r", "product_id": "p", "text": "ok"}
    )
    async with TestKafkaBroker(service.broker):
        for event in shoppers_go_from_kettle_to_teapot():
            await service.broker.publish(event.to_json(), TOPICS.activity)
        await service.broker.publish(json.dumps(bad_kind).encode(), TOPICS.activity)
        await service.broker.publish(activity("me", "kettle").to_json(), TOPICS.activity)
        await service.broker.publish(request("me").to_json(), TOPICS.recs_requests)
        await service.broker.publish(review.to_json(), TOPICS.recs_requests)
    (answer,) = received["results"]
    assert answer["payload"]["items"][0]["product_id"] == "teapot"
    assert [d["payload"]["reason"] for d in received["dead_activity"]] == ["schema_violation"]
    assert [d["payload"]["reason"] for d in received["dead_requests"]] == ["unexpected_event_type"]


def test_an_event_from_a_clock_far_in_the_future_is_capped_near_now() -> None:
    future = activity("me", "kettle").model_copy(
        update={"occurred_at": datetime.now(UTC) + timedelta(days=30)}
    )
    assert interaction_of(future, latest_event_time()).at <= time.time() + MAX_CLOCK_SKEW_SECONDS
    past = activity("me", "kettle").model_copy(
        update={"occurred_at": datetime.now(UTC) - timedelta(days=3)}
    )
    assert interaction_of(past, latest_event_time()).at == past.occurred_at.timestamp()
