"""Sentiment service without torch: segmentation, aspect keywords, labelling rule, head file,
lexical hashing, held-out split and settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shopstream.lexical import LexicalHasher, grams
from shopstream_sentiment.aspects import AspectCatalog, PrototypeIndex
from shopstream_sentiment.config import DEFAULT_ASPECTS, SentimentModelConfig, SentimentSettings
from shopstream_sentiment.datasets import read_reviews, split_held_out
from shopstream_sentiment.head import LinearHead, SentimentHead, language_group, pool_passages
from shopstream_sentiment.labelling import LabelRule, calibrate_neutral_band
from shopstream_sentiment.metrics import classification_report
from shopstream_sentiment.segmentation import (
    chunk_text,
    compose_review_text,
    estimate_tokens,
    split_review_clauses,
    split_sentences,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def catalog() -> AspectCatalog:
    return AspectCatalog.from_file(DEFAULT_ASPECTS)


def test_sentences_split_on_chinese_and_english_punctuation() -> None:
    assert split_sentences("质量很好！物流也快。就是有点贵？") == [
        "质量很好！",
        "物流也快。",
        "就是有点贵？",
    ]
    assert split_sentences("Great book. It costs 3.5 dollars, e.g. cheap!\nBuy it") == [
        "Great book.",
        "It costs 3.5 dollars, e.g. cheap!",
        "Buy it",
    ]


def test_clauses_split_at_commas_and_contrast_words() -> None:
    assert split_review_clauses("物流很快，但是包装破了") == ["物流很快，", "但是包装破了"]
    assert split_review_clauses("Fits perfectly but the price is too high") == [
        "Fits perfectly",
        "but the price is too high",
    ]


def test_short_fragments_merge_into_a_neighbour() -> None:
    assert split_review_clauses("这个价格买到这个质量，很值") == ["这个价格买到这个质量，很值"]
    assert split_review_clauses("Well, the colour is lovely") == ["Well, the colour is lovely"]
    assert split_review_clauses("不但便宜而且好用") == ["不但便宜而且好用"], "不但 is not 但"


def test_keywords_map_clauses_to_aspects(catalog: AspectCatalog) -> None:
    found = [(c.clause, c.aspects) for c in catalog.clauses("物流很快，但是包装破了")]
    assert found == [("物流很快，", ("delivery",)), ("但是包装破了", ("packaging",))]
    found = [(c.clause, c.aspects) for c in catalog.clauses("Fits perfectly but the price is high")]
    assert found == [("Fits perfectly", ("size_fit",)), ("but the price is high", ("price_value",))]


def test_english_keywords_match_whole_words_and_star_endings(catalog: AspectCatalog) -> None:
    assert catalog.keyword_aspects("It was DELIVERED on time") == ("delivery",)
    assert catalog.keyword_aspects("a real benefit for chocolate lovers") == ()
    assert catalog.keyword_aspects("ＱＵＡＬＩＴＹ is fine") == ("quality",), "full-width folds"


def test_product_defects_are_quality_and_refunds_are_service(catalog: AspectCatalog) -> None:
    """What the labelled aspect set found missing or misfiled (README, aspect table)."""
    assert catalog.keyword_aspects("保温杯盖子拧紧了还是漏水") == ("quality",)
    assert catalog.keyword_aspects("The lid leaks") == ("quality",), "a leak is not packaging"
    assert catalog.keyword_aspects("started pilling and fading") == ("quality",)
    assert catalog.keyword_aspects("瓶子在路上漏了") == ("packaging",), "spilled in transit"
    assert catalog.keyword_aspects("still waiting for my refund") == ("service",)
    assert catalog.keyword_aspects("没什么色差") == ("other",)


def test_catalog_has_the_documented_aspects(catalog: AspectCatalog) -> None:
    assert set(catalog.names) == {
        "quality",
        "price_value",
        "delivery",
        "packaging",
        "size_fit",
        "service",
        "taste_freshness",
        "usability",
        "other",
    }
    assert all(aspect.prototypes for aspect in catalog.aspects)


def test_operators_can_supply_their_own_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "aspects.json"
    path.write_text(
        json.dumps(
            {
                "prototype_threshold": 0.9,
                "aspects": {"battery": {"keywords": {"en": ["batter*"], "zh": ["电池"]}}},
            }
        ),
        encoding="utf-8",
    )
    custom = AspectCatalog.from_file(path)
    assert custom.keyword_aspects("电池不耐用") == ("battery",)
    assert custom.keyword_aspects("batteries died") == ("battery",)
    assert custom.prototype_threshold == 0.9


def test_a_broken_catalogue_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "aspects.json"
    path.write_text(json.dumps({"aspects": {"x": {"keywords": "oops"}}}), encoding="utf-8")
    with pytest.raises(TypeError, match=r"x\.keywords"):
        AspectCatalog.from_file(path)


def test_prototype_directions_ignore_the_common_component() -> None:
    prototypes = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0]], dtype=np.float32)
    index = PrototypeIndex(prototypes, ["a", "a", "b"])
    clauses = np.array([[0.9, 0.1, 0.1], [0.1, 0.9, 0.0], [0.6, 0.4, 2.0]], dtype=np.float32)
    assert index.nearest(clauses, 0.3) == ["a", "b", None]
    assert index.nearest(clauses[:0], 0.3) == []
    assert PrototypeIndex(prototypes[:0], []).nearest(clauses, 0.3) == [None] * 3


def test_chunks_pack_whole_sentences_under_the_budget() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    chunks = chunk_text(text, budget=32, max_chunks=100)
    assert len(chunks) > 1
    assert all(chunk.estimated_tokens <= 32 for chunk in chunks)
    assert " ".join(chunk.text for chunk in chunks) == text


def test_long_reviews_keep_the_opening_and_the_closing_chunk() -> None:
    text = "".join(f"第{i}句话写得很长很长很长。" for i in range(60))
    chunks = chunk_text(text, budget=20, max_chunks=3)
    assert len(chunks) == 3
    assert chunks[0].text.startswith("第0句")
    assert chunks[-1].text.endswith("第59句话写得很长很长很长。")


def test_a_sentence_longer_than_the_budget_is_cut() -> None:
    chunks = chunk_text("好" * 50, budget=16, max_chunks=10)
    assert [chunk.estimated_tokens for chunk in chunks] == [16, 16, 16, 2]


def test_token_estimate_counts_chinese_characters_and_english_subwords() -> None:
    assert estimate_tokens("质量很好") == 4
    assert estimate_tokens("good quality") == 3


def test_title_and_body_are_joined_with_a_sentence_break() -> None:
    assert compose_review_text("Loved it", "Five stars") == "Five stars. Loved it"
    assert compose_review_text("Loved it", "Wow!") == "Wow! Loved it"
    assert compose_review_text("很好用", "推荐") == "推荐。很好用"
    assert compose_review_text(" plain ", None) == "plain"


def test_neutral_band_and_rating_disagreement() -> None:
    rule = LabelRule(neutral_band=0.2, rating_disagreement=0.8)
    assert rule.label(0.95) == ("positive", 0.95)
    assert rule.label(0.05)[0] == "negative"
    assert rule.label(0.55) == ("neutral", pytest.approx(0.9))
    assert rule.label(0.39)[0] == "negative"
    assert rule.label(0.9, rating=1.0)[0] == "neutral", "one star but a glowing text"
    assert rule.label(0.1, rating=5.0)[0] == "neutral", "five stars but a damning text"
    assert rule.label(0.75, rating=1.0)[0] == "positive", "below the disagreement threshold"
    assert rule.label(0.1, rating=3.0)[0] == "negative", "three stars contradict nothing"
    assert rule.label(0.9, rating=5.0)[0] == "positive"


def test_neutral_band_calibration_finds_the_coin_flip_zone() -> None:
    probabilities = [0.48, 0.52, 0.47, 0.53, 0.45, 0.55] + [0.9] * 47 + [0.1] * 47
    positives = [True, False, False, True, True, False] + [True] * 47 + [False] * 47
    band = calibrate_neutral_band(probabilities, positives, max_share=0.1)
    assert 0.1 <= band <= 0.4
    assert calibrate_neutral_band([0.9, 0.1], [True, False]) == 0.0


def test_head_round_trips_and_scores_by_language_group_without_torch(tmp_path: Path) -> None:
    hasher = LexicalHasher(10)
    lexical_weights = np.zeros(hasher.size, dtype=np.float32)
    lexical_weights[list(hasher.bucket_counts("差评"))] = -2.0
    chinese = LinearHead(
        embedding_weights=np.array([1.0, 0.0], dtype=np.float32),
        bias=0.0,
        calibration_scale=2.0,
        lexical=hasher,
        lexical_weights=lexical_weights,
    )
    other = LinearHead(embedding_weights=np.array([0.0, 1.0], dtype=np.float32), bias=0.5)
    head = SentimentHead(
        groups={"zh": chinese, "default": other},
        neutral_band=0.1,
        metadata={"encoder": {"id": "enc", "revision": "r1"}, "chunking": {"chunk_tokens": 64}},
    )
    head.save(tmp_path)
    loaded = SentimentHead.load(tmp_path)
    assert loaded.revision == head.revision
    assert len(loaded.revision) == 12
    assert loaded.encoder == "enc"
    assert loaded.chunking.chunk_tokens == 64
    assert loaded.neutral_band == 0.1
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    scores = loaded.probabilities(vectors, ["还行", "差评", "fine"], ["zh", "zh", "default"])
    assert scores[0] == pytest.approx(1 / (1 + np.exp(-2.0)), abs=1e-3)
    assert scores[1] < 0.5
    assert scores[2] == pytest.approx(1 / (1 + np.exp(-0.5)), abs=1e-3)
    assert loaded.head_for("ja") is loaded.groups["default"]
    # Other tests in the same process may have imported torch; check the head module alone.
    probe = "import sys, shopstream_sentiment.head; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


def test_language_groups_follow_locale_then_script() -> None:
    assert language_group("质量很好，物流很快") == "zh"
    assert language_group("Great product, fast delivery") == "default"
    assert language_group("iPhone 15 Pro Max 很好用") == "zh"
    assert language_group("质量很好", locale="en-US") == "default"
    assert language_group("good", locale="zh-CN") == "zh"
    assert language_group("!!! 123") == "default"


def test_passages_pool_to_unit_vectors() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    pooled = pool_passages(vectors, [[0, 1], [2]])
    assert np.allclose(pooled, [[2**-0.5, 2**-0.5], [1.0, 0.0]])


def test_grams_are_stable_and_script_aware() -> None:
    assert grams("好用 Not bad") == ["c:好", "c:用", "c:好用", "w:not", "w:bad", "w:not bad"]
    first = LexicalHasher(12).bucket_counts("质量不错 worth it")
    assert first == LexicalHasher(12).bucket_counts("质量不错 worth it")


def test_held_out_split_is_stratified_and_reproducible(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    rows = ["label,text,extra"] + [
        f"{'positive' if i % 3 else 'negative'},review number {i},x" for i in range(300)
    ]
    path.write_text("\n".join([*rows, "positive,review number 1,dup"]) + "\n", encoding="utf-8")
    reviews = read_reviews(path)
    assert len(reviews) == 300, "the repeated text is dropped"
    train, held_out = split_held_out(reviews, seed=13, test_fraction=0.2)
    assert len(held_out) == 60
    assert sum(r.label == "negative" for r in held_out) == 20
    assert {r.text for r in train}.isdisjoint({r.text for r in held_out})
    assert [r.text for r in split_held_out(reviews, 13, 0.2)[1]] == [r.text for r in held_out]


def test_reading_rejects_unknown_labels(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("label,text\nmeh,hello\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.csv:2"):
        read_reviews(path)


def test_classification_report_counts() -> None:
    report = classification_report(
        ["positive", "positive", "negative", "negative"],
        ["positive", "negative", "negative", "negative"],
        ("positive", "negative"),
    )
    assert report.accuracy == 0.75
    assert report.per_class["negative"].precision == pytest.approx(2 / 3)
    assert report.per_class["positive"].recall == 0.5
    assert report.confusion["positive"]["negative"] == 1


def test_settings_read_the_sentiment_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTIMENT_MODEL__DEVICE", "cpu")
    monkeypatch.setenv("SENTIMENT_MODEL__NEUTRAL_BAND", "0.3")
    monkeypatch.setenv("SENTIMENT_INSIGHT_WINDOWS", '["1d", "7d"]')
    monkeypatch.setenv("SENTIMENT_ALERT_JUMP", "0.25")
    monkeypatch.setenv("SENTIMENT_TOPICS__REVIEWS", "acme.reviews")
    settings = SentimentSettings()
    assert settings.model.device == "cpu"
    assert settings.model.neutral_band == 0.3
    assert settings.insight_windows == ["1d", "7d"]
    assert settings.alert_jump == 0.25
    assert settings.topics.reviews == "acme.reviews"
    assert settings.model.head.joinpath("metadata.json").is_file(), "a head ships by default"


def test_sequence_classification_needs_a_model() -> None:
    with pytest.raises(ValueError, match="hf_model"):
        SentimentModelConfig(backend="sequence_classification")
