"""A stand-in sentiment model for tests about everything but scoring."""

from __future__ import annotations

from collections.abc import Sequence

from shopstream_sentiment.predictions import ReviewText, SentimentPrediction


class KeywordModel:
    """Negative when a review says "broken", positive otherwise: instant and deterministic."""

    model_id = "keyword-sentiment"
    model_revision = "contract-1"

    def load(self) -> None:
        return None

    def unload(self) -> None:
        return None

    def predict_batch(self, inputs: Sequence[ReviewText]) -> list[SentimentPrediction]:
        return [
            SentimentPrediction("negative", 0.1, 0.9)
            if "broken" in item.text
            else SentimentPrediction("positive", 0.9, 0.9)
            for item in inputs
        ]
