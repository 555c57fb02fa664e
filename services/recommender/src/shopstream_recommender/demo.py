"""The recommender part of `shopstream demo`: a sample shop's shoppers and their recommendations.

The service runs in this process against the demo's broker; everything it learns arrives as
events, and the recommendations shown are read back from the results topic like a storefront
would, before and after a purchase.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from shopstream import demos
from shopstream.events import RecommendationsRequested
from shopstream.kafka_io import publish_events, read_topic
from shopstream.runtime.service import BatchService
from shopstream.services import DemoOptions
from shopstream.settings import KafkaSettings
from shopstream_recommender.app import RecommenderCore, build_service
from shopstream_recommender.config import RecommenderSettings
from shopstream_recommender.handlers import RecommenderInput
from shopstream_recommender.samples import (
    SAMPLE_TENANT,
    new_product,
    sample_catalogue,
    sample_sessions,
    view,
)


@dataclass
class RecommenderDemoOutcome:
    requests: int
    answered: int
    seconds: float
    model_load_seconds: float
    metrics_url: str
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


async def run_recommender_demo(
    console: Console, kafka: KafkaSettings, *, metrics_port: int = 0, max_seconds: float = 120.0
) -> RecommenderDemoOutcome:
    """Start the recommender, feed it a shop, ask for three shoppers' lists, buy, ask again."""
    settings = RecommenderSettings(kafka=kafka, http_port=metrics_port, log_json=False)
    service = build_service(settings)
    began = time.perf_counter()
    load_seconds = await demos.start_in_view(
        console, service, "starting the recommender (item encoder, catalogue, replay)..."
    )
    demos.announce_ready(console, service, load_seconds)
    metrics_url = demos.metrics_url(service)
    tenant = f"{SAMPLE_TENANT}-{secrets.token_hex(2)}"
    outcome = RecommenderDemoOutcome(0, 0, 0.0, load_seconds, metrics_url)
    deadline = time.monotonic() + max_seconds
    try:
        await _feed_the_shop(console, service, kafka, tenant, deadline)
        shoppers = {
            "ana": [view(tenant, "ana", "kettle-steel"), view(tenant, "ana", "teapot-cast")],
            "lei": [view(tenant, "lei", "phone-x")],
            "newcomer": [],
        }
        await _apply(service, kafka, [e for events in shoppers.values() for e in events], deadline)
        before = await _ask(
            console,
            service,
            kafka,
            tenant=tenant,
            users=list(shoppers),
            deadline=deadline,
            outcome=outcome,
        )
        _show(console, "recommendations", before)
        bought = [view(tenant, "ana", "teapot-cast", kind=kind) for kind in ("cart", "purchase")]
        await _apply(service, kafka, bought, deadline)
        after = await _ask(
            console,
            service,
            kafka,
            tenant=tenant,
            users=["ana"],
            deadline=deadline,
            outcome=outcome,
        )
        _show(console, "ana after buying the cast-iron teapot", after)
    finally:
        with console.status("stopping the recommender..."):
            await service.stop()
    outcome.seconds = time.perf_counter() - began
    return outcome


async def _feed_the_shop(
    console: Console,
    service: BatchService[RecommenderInput],
    kafka: KafkaSettings,
    tenant: str,
    deadline: float,
) -> None:
    core = service.component(RecommenderCore)
    topics = core.settings.topics
    catalogue = sample_catalogue(tenant)
    await publish_events(kafka, topics.products, catalogue)
    sessions = sample_sessions(tenant)
    console.print(
        f"tenant [bold]{tenant}[/bold]: {len(catalogue)} products (zh + en) and "
        f"{len(sessions)} activity events from {len({e.payload.user_id for e in sessions})} "
        "shoppers"
    )
    await _apply(service, kafka, sessions, deadline)
    # The new product arrives after all browsing: only its text can place it.
    await publish_events(kafka, topics.products, [new_product(tenant)])
    await _wait(
        lambda: "kettle-gooseneck" in core.state.tenant(tenant).vectors,
        deadline,
        "the new product's embedding",
    )


async def _apply(
    service: BatchService[RecommenderInput],
    kafka: KafkaSettings,
    events: list[Any],
    deadline: float,
) -> None:
    core = service.component(RecommenderCore)
    target = core.state.interactions + len(events)
    await publish_events(kafka, core.settings.topics.activity, events)
    await _wait(lambda: core.state.interactions >= target, deadline, "the activity")


async def _wait(condition: Callable[[], bool], deadline: float, what: str) -> None:
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the demo timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _ask(
    console: Console,
    service: BatchService[RecommenderInput],
    kafka: KafkaSettings,
    *,
    tenant: str,
    users: list[str],
    deadline: float,
    outcome: RecommenderDemoOutcome,
) -> dict[str, dict[str, Any]]:
    topics = service.component(RecommenderCore).settings.topics
    requests = [
        RecommendationsRequested(
            tenant_id=tenant,
            payload={"user_id": user, "request_id": f"demo-{uuid.uuid4().hex[:8]}", "count": 8},
        )
        for user in users
    ]
    asks = {request.payload.request_id for request in requests}
    outcome.requests += len(requests)
    with console.status(f"asking for {', '.join(users)}'s recommendations..."):
        await publish_events(kafka, topics.recs_requests, requests)
        answers: dict[str, dict[str, Any]] = {}
        async for _key, value, _headers in read_topic(
            kafka, topics.recs_results, idle_timeout=None, deadline=deadline
        ):
            document = json.loads(value)
            if document["payload"]["request_id"] in asks:
                answers[document["payload"]["user_id"]] = document["payload"]
                if len(answers) == len(asks):
                    break
    outcome.answered += len(answers)
    for user, answer in answers.items():
        outcome.lists[user] = answer["items"]
    return answers


def _show(console: Console, title: str, answers: dict[str, dict[str, Any]]) -> None:
    table = Table(title=title)
    for column in ("shopper", "#", "product", "score", "reason"):
        table.add_column(column, justify="right" if column in {"#", "score"} else "left")
    for user, answer in answers.items():
        label = f"{user} (cold start)" if answer["cold_start"] else user
        for rank, item in enumerate(answer["items"], start=1):
            table.add_row(
                label if rank == 1 else "",
                str(rank),
                item["product_id"],
                f"{item['score']:.3f}",
                item["reason"],
            )
        table.add_section()
    console.print(table)


async def demo_step(options: DemoOptions) -> bool:
    """`shopstream demo`'s recommender step: every shopper's request answered."""
    outcome = await run_recommender_demo(
        options.console, options.kafka, metrics_port=options.metrics_port
    )
    return outcome.answered == outcome.requests
