"""Products and copy requests in; descriptions per locale and copy variants out. No torch.

Skip-unchanged: a description is written only when the hash of (product content, target
locale, model, model revision, prompt version, compliance lexicon) differs from the hash of
the last description published for that product and locale.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, cast

from pydantic import Field, ValidationError

from shopstream.events import (
    CopyGenerated,
    CopyGeneratedPayload,
    CopyRequested,
    DescriptionGenerated,
    DescriptionGeneratedPayload,
    Event,
    ProductDeleted,
    ProductUpserted,
    parse_key,
    parse_product_record,
)
from shopstream.runtime.batch import BatchHandler, Publication
from shopstream.runtime.service import ServiceContext
from shopstream.topics import TopicSettings
from shopstream_describer.compliance import Lexicons
from shopstream_describer.facts import ProductFacts, content_hash
from shopstream_describer.pipeline import (
    CopyJob,
    CopyResult,
    DescriberPipeline,
    DescriptionJob,
    DescriptionResult,
)

DescriberInput = Annotated[
    ProductUpserted | ProductDeleted | CopyRequested, Field(discriminator="event_type")
]
ACCEPTED = cast("type[Event]", DescriberInput)
"""What the describer consumes, in the form `BatchService(accepts=...)` takes."""

ProductKey = tuple[str, str]
DescriptionKey = tuple[str, str, str]


class UnknownProductError(LookupError):
    """A copy request names products the describer has never seen; it is dead-lettered and can
    be replayed once the catalogue has published them."""


@dataclass
class DescriberState:
    """The product table (every tenant's products) and the hash of each published text.

    A hash is kept only while its product is in the table: a deleted product's descriptions
    stay on the compacted topic, and must not make a re-created product count as unchanged.
    """

    products: dict[ProductKey, ProductFacts] = field(default_factory=dict)
    hashes: dict[DescriptionKey, str] = field(default_factory=dict)
    published: dict[ProductKey, set[str]] = field(default_factory=dict)
    """Locales with a description on the compacted topic, per product: what a deletion must
    tombstone. Kept apart from `hashes`, which the product table clears on its own schedule."""

    def forget_product(self, tenant_id: str, product_id: str) -> None:
        self.products.pop((tenant_id, product_id), None)
        for key in [key for key in self.hashes if key[:2] == (tenant_id, product_id)]:
            del self.hashes[key]

    def load_description(self, value: bytes | None, key: bytes | None = None) -> bool:
        """Remember a published description's hash; read after the product table is complete.
        A tombstone (`key` `<tenant>:<product>:<locale>`) means that text was withdrawn."""
        if value is None:
            tenant, rest = parse_key(key) or ("", "")
            product_id, _, locale = rest.rpartition(":")
            self.published.get((tenant, product_id), set()).discard(locale)
            return False
        try:
            event = DescriptionGenerated.model_validate_json(value)
        except (ValidationError, json.JSONDecodeError):
            return False
        payload = event.payload
        self.published.setdefault((event.tenant_id, payload.product_id), set()).add(payload.locale)
        if (event.tenant_id, payload.product_id) not in self.products:
            return False
        self.hashes[(event.tenant_id, payload.product_id, payload.locale)] = payload.content_hash
        return True

    def load_product(self, key: bytes | None, value: bytes | None) -> bool:
        """Apply one record of the products topic; False when it cannot be used."""
        change = parse_product_record(key, value)
        if change is None:
            return False
        if change.product is None:
            self.forget_product(change.tenant_id, change.product_id)
        else:
            key_of = (change.tenant_id, change.product_id)
            self.products[key_of] = ProductFacts.from_payload(change.product)
        return True


@dataclass(frozen=True)
class _Planned:
    event: ProductUpserted
    facts: ProductFacts
    locale: str
    content_hash: str


TableRefresh = Callable[[], Awaitable[object]]
"""Brings the product table up to everything published so far (see `app.ProductTable`)."""


def build_describer_handler(
    context: ServiceContext,
    pipeline: DescriberPipeline,
    state: DescriberState,
    lexicons: Lexicons,
    topics: TopicSettings,
    *,
    refresh_products: TableRefresh | None = None,
) -> BatchHandler[Event]:
    async def handle(events: Sequence[Event]) -> list[Publication]:
        requests = [event for event in events if isinstance(event, CopyRequested)]
        if requests and refresh_products is not None:
            # A campaign may name products another replica consumed a moment ago.
            await refresh_products()
        # The batch's own product changes count for its copy requests, but `state` changes
        # only after every result is built: a failing batch is bisected and retried clean.
        products = dict(state.products)
        latest: dict[ProductKey, ProductUpserted | ProductDeleted] = {}
        deleted: set[ProductKey] = set()
        for event in events:
            if isinstance(event, ProductUpserted | ProductDeleted):
                key = (event.tenant_id, event.payload.product_id)
                latest[key] = event
                if isinstance(event, ProductUpserted):
                    products[key] = ProductFacts.from_payload(event.payload)
                else:
                    products.pop(key, None)
                    deleted.add(key)
        # Only a product's last change in the batch is described: an earlier version would be
        # overwritten at once on the compacted topic, a deleted product needs no text.
        planned: list[_Planned] = []
        for key, event in latest.items():
            if isinstance(event, ProductUpserted):
                planned += _plan(
                    event, products[key], pipeline, state, lexicons, forgotten=key in deleted
                )
        copy_jobs = [_copy_job(request, products, lexicons) for request in requests]
        described = await context.inference.run(
            pipeline.describe,
            [
                DescriptionJob(item.facts, item.locale, lexicons.for_tenant(item.event.tenant_id))
                for item in planned
            ],
        )
        copies = await context.inference.run(pipeline.copy, copy_jobs)
        publications = [
            Publication(topics.descriptions, _description_event(context, item, result))
            for item, result in zip(planned, described, strict=True)
        ]
        publications += [
            Publication(topics.copies, _copy_event(context, request, result))
            for request, result in zip(requests, copies, strict=True)
        ]
        # A product deleted for good withdraws its descriptions from the compacted topic.
        withdrawn = [key for key, event in latest.items() if isinstance(event, ProductDeleted)]
        publications += [
            Publication.tombstone(topics.descriptions, f"{tenant_id}:{product_id}:{locale}")
            for tenant_id, product_id in withdrawn
            for locale in sorted(state.published.get((tenant_id, product_id), ()))
        ]
        # Only this batch's own keys change: the product table's follower writes the same
        # dict while inference runs, and a snapshot written back would drop what it added
        # (a clean-clone CI run lost another partition's product that way).
        for tenant_id, product_id in deleted:
            state.forget_product(tenant_id, product_id)
        for key in withdrawn:
            state.published.pop(key, None)
        for key, event in latest.items():
            if isinstance(event, ProductUpserted):
                state.products[key] = products[key]
        for item in planned:
            written = (item.event.tenant_id, item.facts.product_id, item.locale)
            state.hashes[written] = item.content_hash
            state.published.setdefault(written[:2], set()).add(item.locale)
        return publications

    return handle


def _plan(
    event: ProductUpserted,
    facts: ProductFacts,
    pipeline: DescriberPipeline,
    state: DescriberState,
    lexicons: Lexicons,
    *,
    forgotten: bool,
) -> list[_Planned]:
    """The locales whose text must be written; `forgotten`: deleted earlier in the batch."""
    planned = []
    for locale in dict.fromkeys(event.payload.target_locales or [event.payload.locale]):
        lineage = pipeline.lineage(locale)
        digest = content_hash(
            facts,
            locale,
            lineage.model_id,
            lineage.model_revision,
            lineage.prompt_version or "",
            lexicons.for_tenant(event.tenant_id).fingerprint,
        )
        previous = (
            None if forgotten else state.hashes.get((event.tenant_id, facts.product_id, locale))
        )
        if previous != digest:
            planned.append(_Planned(event, facts, locale, digest))
    return planned


def _copy_job(
    request: CopyRequested, products: dict[ProductKey, ProductFacts], lexicons: Lexicons
) -> CopyJob:
    payload = request.payload
    missing = [pid for pid in payload.product_ids if (request.tenant_id, pid) not in products]
    if missing:
        raise UnknownProductError(f"unknown products for tenant {request.tenant_id}: {missing}")
    return CopyJob(
        products=[products[(request.tenant_id, pid)] for pid in payload.product_ids],
        channel=payload.channel,
        locale=payload.locale,
        variants=payload.variants,
        lexicon=lexicons.for_tenant(request.tenant_id),
        max_length=payload.max_length,
        tone=payload.tone,
        audience=payload.audience,
        brief=payload.brief,
    )


def _description_event(
    context: ServiceContext, item: _Planned, result: DescriptionResult
) -> DescriptionGenerated:
    return context.result(
        DescriptionGenerated,
        item.event,
        result.lineage,
        DescriptionGeneratedPayload(
            product_id=item.facts.product_id,
            locale=item.locale,
            description=result.description,
            bullet_points=result.bullet_points,
            seo_title=result.seo_title or None,
            content_hash=item.content_hash,
            quality=result.quality,
        ),
        extra=item.locale,
    )


def _copy_event(
    context: ServiceContext, request: CopyRequested, result: CopyResult
) -> CopyGenerated:
    payload = request.payload
    return context.result(
        CopyGenerated,
        request,
        result.lineage,
        CopyGeneratedPayload(
            campaign_id=payload.campaign_id,
            channel=payload.channel,
            locale=payload.locale,
            variants=result.variants,
            request_event_id=str(request.event_id),
            review_required=result.review_required,
        ),
        extra="copy",
    )
