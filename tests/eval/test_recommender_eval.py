"""Next-item quality on YOOCHOOSE clicks (../shared/data/recommender) against both baselines.

A slice of the test file (the first predictions in time order, after the whole train file as
warm-up) keeps this under a minute; `shopstream eval recommender` runs the full file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shopstream_recommender.config import RankingConfig, StateLimits
from shopstream_recommender.evaluation import evaluate, read_clicks

pytestmark = pytest.mark.eval

DATA = Path(__file__).parents[2].parent / "shared" / "data" / "recommender"
TRAIN = DATA / "yoochoose_clicks_train_full.tsv"
TEST = DATA / "yoochoose_clicks_test.tsv"
PREDICTIONS = 1_500


@pytest.mark.skipif(not TEST.exists(), reason=f"no evaluation data at {DATA}")
def test_blend_beats_popularity_and_co_occurrence_on_next_item() -> None:
    report = evaluate(
        read_clicks(TRAIN, "sessions"),
        read_clicks(TEST, "sessions"),
        config=RankingConfig(),
        limits=StateLimits(),
        limit=PREDICTIONS,
    )
    summary = report.as_dict()
    protocols = summary["protocols"]
    assert isinstance(protocols, dict)
    for protocol in ("next_item", "next_new_item"):
        scores = protocols[protocol]
        ours, co_occurrence, popularity = (
            scores[name] for name in ("shopstream", "co_occurrence", "popularity")
        )
        print(f"\n{protocol}: {scores}")
        assert ours["predictions"] >= PREDICTIONS * 0.85
        for metric in ("hit_rate", "ndcg", "mrr"):
            assert ours[metric] > popularity[metric] * 3, f"{protocol} {metric} vs popularity"
            assert ours[metric] > co_occurrence[metric] * 1.02, f"{protocol} {metric} vs co-occ."
