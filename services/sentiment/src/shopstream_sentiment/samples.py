"""The demo shop's reviews: 200 short reviews, Chinese and English, written for this repository.

Six products over the last 45 days; the kettle's recent reviews complain about leaks, so its
insights raise an alert, while the others stay steady.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from importlib import resources
from typing import TypedDict

from shopstream.events import ReviewSubmitted, utc_now

SAMPLE_FILE = "sample_reviews.jsonl"
SAMPLE_TENANT = "demo-shop"


class SampleRow(TypedDict):
    review_id: str
    product_id: str
    locale: str
    rating: float | None
    days_ago: int
    text: str


def sample_rows() -> list[SampleRow]:
    package = resources.files("shopstream_sentiment")
    text = package.joinpath("data", SAMPLE_FILE).read_text("utf-8")
    rows: list[SampleRow] = [json.loads(line) for line in text.splitlines() if line.strip()]
    return rows


def sample_reviews(
    tenant_id: str = SAMPLE_TENANT, now: datetime | None = None
) -> list[ReviewSubmitted]:
    """Review events dated `days_ago` whole days before `now`, oldest first (as they happened)."""
    now = now or utc_now()
    rows = sorted(sample_rows(), key=lambda row: -row["days_ago"])
    return [
        ReviewSubmitted(
            tenant_id=tenant_id,
            occurred_at=now - timedelta(days=row["days_ago"]),
            payload={
                "review_id": row["review_id"],
                "product_id": row["product_id"],
                "text": row["text"],
                "rating": row["rating"],
                "locale": row["locale"],
            },
        )
        for row in rows
    ]
