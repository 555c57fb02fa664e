"""The runtime's metric helpers, against prometheus_client's own behaviour."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram

from shopstream.runtime.metrics import SECONDS_BUCKETS, observe_many


def _samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for metric in histogram.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


@pytest.mark.parametrize(
    "amounts",
    [
        [],
        [0.0],
        [0.001, 0.0011, 0.005, 0.0049, 120.0, 121.0, 1e9],
        [0.03 * n for n in range(500)],
    ],
)
def test_observe_many_equals_observe_per_amount(amounts: list[float]) -> None:
    one_by_one = Histogram("one", "x", buckets=SECONDS_BUCKETS, registry=CollectorRegistry())
    batched = Histogram("one", "x", buckets=SECONDS_BUCKETS, registry=CollectorRegistry())
    for amount in amounts:
        one_by_one.observe(amount)
    observe_many(batched, amounts)
    expected, got = _samples(one_by_one), _samples(batched)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value), name
    assert got[("one_count", "")] == len(amounts)
