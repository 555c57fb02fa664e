"""From a calibrated P(positive) (and an optional star rating) to positive / neutral / negative.

The rule, applied to a review or to one aspect clause:

1. **Text.** ``p`` is the calibrated probability that the text is positive (the head's logit
   after Platt scaling fitted on held-out reviews, so ``p = 0.8`` is right about 80% of the
   time). The label is *neutral* when ``|p - 0.5| < band / 2``, else *positive* when
   ``p >= 0.5`` and *negative* otherwise. ``band`` is calibrated with the head: the widest
   band around 0.5 inside which the held-out accuracy of the positive-vs-negative call stays at
   most ``NEUTRAL_BAND_MAX_ACCURACY`` (the model is close to a coin flip there), capped so that
   at most ``NEUTRAL_BAND_MAX_SHARE`` of held-out reviews fall inside and so that its edges stay
   within ``0.5 +/- (NEUTRAL_BAND_MAX_ACCURACY - 0.5)``. It is stored in the
   head's ``metadata.json`` and can be overridden with ``SENTIMENT_MODEL__NEUTRAL_BAND``.
2. **Stars against text.** When a star rating (0-5 scale) is given and strongly contradicts the
   text, the review is *neutral*: rating >= 4 while ``p <= 1 - t``, or rating <= 2 while
   ``p >= t``, with ``t = SENTIMENT_MODEL__RATING_DISAGREEMENT`` (default 0.8). A three-star
   rating never contradicts anything. The stars do not otherwise change the label or the
   score: the score always describes the text, so dashboards can compare it with the stars.

``confidence`` is ``p`` for positive, ``1 - p`` for negative and, for neutral, ``1 - 2|p - 0.5|``
(1.0 when the text is exactly undecided, lower the more the text leans one way).
"""

from __future__ import annotations

from dataclasses import dataclass

from shopstream_sentiment.predictions import PolarityName

NEUTRAL_BAND_MAX_ACCURACY = 0.70
NEUTRAL_BAND_MAX_SHARE = 0.10
POSITIVE_RATING = 4.0
NEGATIVE_RATING = 2.0


@dataclass(frozen=True, slots=True)
class LabelRule:
    """The neutral band width and the stars-against-text threshold."""

    neutral_band: float
    rating_disagreement: float = 0.8

    def __post_init__(self) -> None:
        if not 0.0 <= self.neutral_band < 1.0:
            raise ValueError(f"neutral_band must be in [0, 1), got {self.neutral_band}")
        if not 0.5 < self.rating_disagreement <= 1.0:
            raise ValueError(
                f"rating_disagreement must be in (0.5, 1], got {self.rating_disagreement}"
            )

    def in_band(self, probability: float) -> bool:
        return abs(probability - 0.5) < self.neutral_band / 2

    def contradicts(self, probability: float, rating: float | None) -> bool:
        """True when the stars point one way and the text confidently the other."""
        if rating is None:
            return False
        if rating >= POSITIVE_RATING:
            return probability <= 1.0 - self.rating_disagreement
        if rating <= NEGATIVE_RATING:
            return probability >= self.rating_disagreement
        return False

    def label(self, probability: float, rating: float | None = None) -> tuple[PolarityName, float]:
        """(label, confidence) for a calibrated P(positive) and an optional star rating."""
        if self.in_band(probability) or self.contradicts(probability, rating):
            return "neutral", 1.0 - 2.0 * abs(probability - 0.5)
        if probability >= 0.5:
            return "positive", probability
        return "negative", 1.0 - probability


def calibrate_neutral_band(
    probabilities: list[float],
    positives: list[bool],
    *,
    max_accuracy: float = NEUTRAL_BAND_MAX_ACCURACY,
    max_share: float = NEUTRAL_BAND_MAX_SHARE,
    step: float = 0.01,
) -> float:
    """The band width of rule 1, fitted on held-out calibrated probabilities and true labels."""
    if len(probabilities) != len(positives) or not probabilities:
        raise ValueError("need as many labels as probabilities, and at least one")
    best = 0.0
    candidate = step
    # With calibrated scores a row at p = max_accuracy is itself right that often, so the band
    # never reaches past it, even across an empty stretch of scores.
    widest = 2.0 * (max_accuracy - 0.5)
    while candidate <= widest + 1e-9:
        inside = [
            (p >= 0.5) == truth
            for p, truth in zip(probabilities, positives, strict=True)
            if abs(p - 0.5) < candidate / 2
        ]
        if len(inside) > max_share * len(probabilities):
            break
        if inside and sum(inside) / len(inside) <= max_accuracy:
            best = candidate
        candidate = round(candidate + step, 10)
    return round(best, 4)
