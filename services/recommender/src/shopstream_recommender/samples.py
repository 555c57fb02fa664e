"""A small bilingual sample shop for the demo: a catalogue and a day of browsing sessions.

Written for shopstream (not taken from any data set): a few shopping journeys that real shops
see (kettle -> teapot -> tea, phone -> case -> charger, dress -> shoes), repeated by many
shoppers with some noise, so the co-occurrence signals have something to learn.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from shopstream.events import ActivityRecorded, ProductUpserted

SAMPLE_TENANT = "demo-recs"
PRODUCTS: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    ("kettle-steel", "Steel electric kettle 1.7 l", "kitchen", {"material": "steel"}),
    ("kettle-glass", "Glass electric kettle 1.5 l", "kitchen", {"material": "glass"}),
    ("teapot-cast", "Cast-iron teapot 0.8 l", "kitchen", {"material": "cast iron"}),
    ("mug-set", "Stoneware mug set of 4", "kitchen", {"pieces": "4"}),
    ("tea-longjing", "西湖龙井 绿茶 250g", "tea", {"产地": "杭州"}),
    ("tea-puer", "云南普洱茶 熟茶 357g", "tea", {"产地": "云南"}),
    ("tea-earl", "Earl Grey loose-leaf tea 200 g", "tea", {"origin": "Sri Lanka"}),
    ("phone-x", "X5 smartphone 128 GB", "phones", {"storage": "128 GB"}),
    ("case-x", "X5 手机壳 硅胶 黑色", "accessories", {"颜色": "黑色"}),
    ("charger-65w", "65 W USB-C fast charger", "accessories", {"power": "65 W"}),
    ("cable-usbc", "USB-C 编织数据线 2m", "accessories", {"长度": "2m"}),
    ("earbuds", "Wireless earbuds with charging case", "audio", {"battery": "24 h"}),
    ("dress-linen", "Linen summer dress", "fashion", {"fabric": "linen"}),
    ("sandals", "Leather sandals", "fashion", {"material": "leather"}),
    ("sunhat", "Straw sun hat", "fashion", {"material": "straw"}),
    ("dress-silk", "真丝连衣裙 夏季", "fashion", {"面料": "真丝"}),
)
NEW_PRODUCT = (
    "kettle-gooseneck",
    "Gooseneck electric kettle for pour-over 1 l",
    "kitchen",
    {"material": "steel"},
)
"""Published after the browsing: no shopper has touched it, only its text can place it."""
JOURNEYS: tuple[tuple[str, ...], ...] = (
    ("kettle-steel", "teapot-cast", "tea-longjing", "mug-set"),
    ("kettle-glass", "teapot-cast", "tea-puer"),
    ("teapot-cast", "tea-puer", "tea-longjing"),
    ("kettle-steel", "mug-set", "tea-earl"),
    ("phone-x", "case-x", "charger-65w", "cable-usbc"),
    ("phone-x", "earbuds", "case-x"),
    ("charger-65w", "cable-usbc", "earbuds"),
    ("dress-linen", "sandals", "sunhat"),
    ("dress-silk", "dress-linen", "sandals"),
)
PURCHASES = {"tea-longjing", "case-x", "sandals", "cable-usbc"}
"""Journeys that reach one of these end with a cart and a purchase of it."""


def sample_catalogue(tenant: str = SAMPLE_TENANT) -> list[ProductUpserted]:
    return [_product(tenant, *row) for row in PRODUCTS]


def new_product(tenant: str = SAMPLE_TENANT) -> ProductUpserted:
    return _product(tenant, *NEW_PRODUCT)


def _product(
    tenant: str, product_id: str, title: str, category: str, attributes: dict[str, str]
) -> ProductUpserted:
    locale = "zh-CN" if any("\u4e00" <= char <= "\u9fff" for char in title) else "en"
    return ProductUpserted(
        tenant_id=tenant,
        payload={
            "product_id": product_id,
            "title": title,
            "category": category,
            "attributes": attributes,
            "locale": locale,
        },
    )


def sample_sessions(
    tenant: str = SAMPLE_TENANT, shoppers: int = 120, seed: int = 7
) -> list[ActivityRecorded]:
    """One session per background shopper, most following a journey, a few wandering."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    start = datetime.now(UTC) - timedelta(hours=6)
    catalogue = [row[0] for row in PRODUCTS]
    events: list[ActivityRecorded] = []
    for shopper in range(shoppers):
        journey = list(rng.choice(JOURNEYS))
        if rng.random() < 0.1:
            journey.insert(rng.randrange(len(journey) + 1), rng.choice(catalogue))
        journey = journey[: rng.randint(2, len(journey))]
        at = start + timedelta(minutes=3 * shopper)
        for step, product in enumerate(journey):
            events.append(
                view(tenant, f"shopper-{shopper}", product, at + timedelta(seconds=40 * step))
            )
        bought = [product for product in journey if product in PURCHASES]
        if bought:
            when = at + timedelta(seconds=40 * len(journey))
            events.append(view(tenant, f"shopper-{shopper}", bought[0], when, kind="cart"))
            events.append(
                view(
                    tenant,
                    f"shopper-{shopper}",
                    bought[0],
                    when + timedelta(seconds=30),
                    "purchase",
                )
            )
    return events


def view(
    tenant: str, user: str, product: str, at: datetime | None = None, kind: str = "view"
) -> ActivityRecorded:
    return ActivityRecorded(
        tenant_id=tenant,
        occurred_at=at or datetime.now(UTC),
        payload={"user_id": user, "kind": kind, "product_id": product},
    )
