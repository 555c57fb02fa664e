"""Catalogue events: products as the shop's PIM publishes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, TypeAdapter, ValidationError

from shopstream.events.envelope import (
    UTF8_ENCODABLE,
    EntityId,
    Event,
    Label,
    Locale,
    Name,
    Paragraph,
    StrictModel,
    parse_key,
)

AttributeValue = Annotated[str, StringConstraints(max_length=1_000), UTF8_ENCODABLE]
ImageUrl = Annotated[str, StringConstraints(max_length=2_048), UTF8_ENCODABLE]


class Price(StrictModel):
    amount: float = Field(ge=0, le=1e9)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class ProductUpsertedPayload(StrictModel):
    product_id: EntityId
    title: Name
    locale: Locale = "en"
    brand: Name | None = None
    category: Name | None = None
    attributes: dict[Label, AttributeValue] = Field(default_factory=dict, max_length=200)
    price: Price | None = None
    available: bool = True
    image_urls: list[ImageUrl] = Field(default_factory=list, max_length=20)
    description: Paragraph | None = None
    """The merchant's own text, if any; the describer treats it as a source of facts."""
    target_locales: list[Locale] = Field(default_factory=list, max_length=10)
    """Locales the describer should write for; empty means the product's own locale."""


class ProductUpserted(Event):
    event_type: Literal["product.upserted"] = "product.upserted"
    payload: ProductUpsertedPayload

    key_fields = ("product_id",)


class ProductDeletedPayload(StrictModel):
    product_id: EntityId


class ProductDeleted(Event):
    event_type: Literal["product.deleted"] = "product.deleted"
    payload: ProductDeletedPayload

    key_fields = ("product_id",)


ProductEvent = Annotated[ProductUpserted | ProductDeleted, Field(discriminator="event_type")]
_product_event: TypeAdapter[ProductUpserted | ProductDeleted] = TypeAdapter(ProductEvent)


@dataclass(frozen=True, slots=True)
class ProductChange:
    """What one record of the compacted products topic does to a product table."""

    tenant_id: str
    product_id: str
    product: ProductUpsertedPayload | None
    """The product as it now is; None when it is gone (a deletion event or a tombstone)."""


def parse_product_record(key: bytes | None, value: bytes | None) -> ProductChange | None:
    """The change a products-topic record makes; None when the record cannot be used (not a
    product event, or a tombstone whose key is not `<tenant>:<product>`).

    Every replica of a table reads every record, so callers log and count an unusable record
    rather than dead-letter it once per replica.
    """
    if value is None:
        parsed = parse_key(key)
        return None if parsed is None else ProductChange(*parsed, product=None)
    try:
        event = _product_event.validate_json(value)
    except ValidationError:
        return None
    product = event.payload if isinstance(event, ProductUpserted) else None
    return ProductChange(event.tenant_id, event.payload.product_id, product)
