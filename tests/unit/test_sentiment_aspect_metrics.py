"""Aspect-finding metrics (``aspect_evaluation``) without a model: counts, micro averages and
the labelled sets' format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shopstream_sentiment.aspect_evaluation import Counts, read_aspect_examples, score_aspects
from shopstream_sentiment.aspects import AspectCatalog
from shopstream_sentiment.config import DEFAULT_ASPECTS

pytestmark = pytest.mark.unit

DATA = Path(__file__).parents[1] / "eval" / "data"
ASPECTS = ("quality", "delivery", "packaging")


def pairs(*items: str) -> frozenset[tuple[str, str]]:
    """``pairs("quality-", "delivery+")``."""
    polarity = {"+": "positive", "-": "negative", "0": "neutral"}
    return frozenset((item[:-1], polarity[item[-1]]) for item in items)


def test_detection_ignores_polarity_and_pairs_do_not() -> None:
    gold = [pairs("quality-"), pairs("delivery+", "packaging-"), pairs(), pairs("quality+")]
    found = [pairs("quality-"), pairs("delivery0", "packaging-"), pairs("quality-"), pairs()]
    scores = score_aspects(gold, found, ASPECTS)

    quality = scores.detection["quality"]
    assert (quality.true_positive, quality.false_positive, quality.false_negative) == (1, 1, 1)
    delivery = scores.detection["delivery"]
    assert (delivery.precision, delivery.recall) == (1.0, 1.0), "neutral is still delivery"
    wrong_polarity = scores.pairs["delivery"]
    assert (wrong_polarity.true_positive, wrong_polarity.false_positive) == (0, 1)
    assert wrong_polarity.false_negative == 1

    micro = scores.micro(scores.detection)
    assert (micro.true_positive, micro.false_positive, micro.false_negative) == (3, 1, 1)
    assert micro.precision == pytest.approx(0.75)
    assert micro.f1 == pytest.approx(0.75)
    assert scores.micro(scores.pairs).f1 == pytest.approx(0.5)


def test_one_aspect_with_both_polarities_is_two_pairs_but_one_detection() -> None:
    gold = [pairs("quality+", "quality-")]
    scores = score_aspects(gold, [pairs("quality+")], ASPECTS)
    assert scores.detection["quality"].f1 == 1.0
    assert scores.pairs["quality"].precision == 1.0
    assert scores.pairs["quality"].recall == 0.5


def test_an_aspect_nobody_mentions_scores_zero_not_an_error() -> None:
    empty = Counts()
    assert (empty.precision, empty.recall, empty.f1) == (0.0, 0.0, 0.0)
    report = score_aspects([pairs()], [pairs()], ASPECTS).as_dict()
    assert report["per_aspect"]["packaging"]["detection"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "gold": 0,
        "found": 0,
    }
    with pytest.raises(ValueError, match="differ in length"):
        score_aspects([pairs()], [], ASPECTS)


def test_an_unknown_aspect_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    lines = [{"text": "ok", "aspects": []}, {"text": "x", "aspects": [["colour", "positive"]]}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    with pytest.raises(ValueError, match=r"set\.jsonl:2: .*colour"):
        read_aspect_examples(path, ASPECTS)


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_labelled_sets_use_the_catalogue_and_cover_the_cases(language: str) -> None:
    names = AspectCatalog.from_file(DEFAULT_ASPECTS).names
    examples = read_aspect_examples(DATA / f"sentiment_aspects_{language}.jsonl", names)
    check = read_aspect_examples(DATA / f"sentiment_aspects_check_{language}.jsonl", names)
    assert len(examples) >= 100
    assert len(check) >= 40
    assert sum(not e.gold for e in examples) >= 10, "sentences with no aspect"
    assert sum(len({a for a, _ in e.gold}) >= 2 for e in examples) >= 10, "two aspects"
    assert {a for e in examples for a, _ in e.gold} == set(names), "every aspect is labelled"
