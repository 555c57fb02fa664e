"""Reference figures of the describer's evaluation: ROUGE-L, BLEU-4, distinct-2, lengths, shares."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest

from shopstream.events import ProductUpsertedPayload
from shopstream_describer.compliance import Lexicons
from shopstream_describer.evaluation import EvalRow, evaluate_rows
from shopstream_describer.pipeline import DescriberPipeline
from shopstream_describer.text_metrics import (
    corpus_bleu,
    distinct_n,
    lcs_length,
    rouge_l,
    tokens,
)
from support.describer import ScriptedGenerator

pytestmark = pytest.mark.unit


def test_chinese_is_characters_without_punctuation_and_english_is_lowercased_words() -> None:
    assert tokens("白色 上衣，纯棉！ＡＢ", "zh") == ["白", "色", "上", "衣", "纯", "棉", "a", "b"]
    assert tokens("Breathable, machine-washable T-shirt!", "en") == [
        "breathable",
        "machine",
        "washable",
        "t",
        "shirt",
    ]


def test_lcs_matches_the_quadratic_definition() -> None:
    def quadratic(first: Sequence[str], second: Sequence[str]) -> int:
        previous = [0] * (len(second) + 1)
        for item in first:
            row = [0]
            for j, other in enumerate(second):
                row.append(previous[j] + 1 if item == other else max(previous[j + 1], row[j]))
            previous = row
        return previous[-1]

    generator = random.Random(13)
    for _ in range(300):
        first = generator.choices("abcd", k=generator.randint(0, 25))
        second = generator.choices("abcd", k=generator.randint(0, 25))
        assert lcs_length(first, second) == quadratic(first, second)


def test_rouge_l() -> None:
    assert rouge_l(list("abc"), list("abc")) == 1.0
    assert rouge_l(list("abc"), list("xyz")) == 0.0
    assert rouge_l([], list("abc")) == 0.0
    # LCS(abcde, acef) = ace: P = 3/5, R = 3/4, F1 = 2PR / (P + R) = 2/3.
    assert rouge_l(list("abcde"), list("acef")) == pytest.approx(2 / 3)
    # 面料轻薄透气 vs 轻薄的面料: LCS 2 ("面料" or "轻薄"), P = 2/6, R = 2/5, F1 = 4/11.
    chinese = rouge_l(tokens("面料轻薄透气", "zh"), tokens("轻薄的面料。", "zh"))
    assert chinese == pytest.approx(4 / 11)
    english = rouge_l(tokens("The cat sat.", "en"), tokens("the cat SAT", "en"))
    assert english == 1.0


def test_bleu_4() -> None:
    sentence = tokens("a black cotton tee with a round neck", "en")
    assert corpus_bleu([sentence], [sentence]) == pytest.approx(1.0)
    # Shorter than a 3-gram: the add-one smoothing keeps an exact copy at 1.0.
    assert corpus_bleu([["a", "b"]], [["a", "b"]]) == pytest.approx(1.0)
    # Every n-gram of a 4-word prefix matches; only the brevity penalty exp(1 - 8/4) remains.
    assert corpus_bleu([sentence[:4]], [sentence]) == pytest.approx(math.exp(-1))
    # p1 = 3/4, p2 = (1+1)/(3+1), p3 = (0+1)/(2+1), p4 = (0+1)/(1+1): (1/16) ** (1/4) = 0.5.
    assert corpus_bleu([list("abcd")], [list("abxd")]) == pytest.approx(0.5)
    # Clipped counts: four "the" against one.
    assert corpus_bleu([["the"] * 4], [["the", "cat"]]) == pytest.approx(
        (1 / 4 * 1 / 4 * 1 / 3 * 1 / 2) ** 0.25
    )
    assert corpus_bleu([list("xyz")], [list("abc")]) == 0.0
    assert corpus_bleu([], []) == 0.0


def test_bleu_is_summed_over_the_corpus_not_averaged() -> None:
    # Lengths 4 + 4 against 4 + 8: the penalty uses the totals, exp(1 - 12/8).
    candidates = [list("abcd"), list("efgh")]
    references = [list("abcd"), list("efghijkl")]
    assert corpus_bleu(candidates, references) == pytest.approx(math.exp(1 - 12 / 8))


def test_distinct_2() -> None:
    assert distinct_n([["a", "b", "a", "b"]]) == pytest.approx(2 / 3)
    assert distinct_n([tokens("好好好", "zh")]) == pytest.approx(1 / 2)
    # Pooled over texts: the same bigram in two descriptions counts once.
    assert distinct_n([["a", "b"], ["a", "b"], ["b", "c"]]) == pytest.approx(2 / 3)
    assert distinct_n([["a"]]) == 0.0


def row(product_id: str, locale: str, reference: str | None, **attributes: str) -> EvalRow:
    payload = ProductUpsertedPayload(
        product_id=product_id,
        title=attributes.pop("title"),
        locale=locale,
        attributes=attributes,
    )
    return EvalRow(payload, reference)


def test_evaluation_reports_reference_figures_per_language_and_candidate_claims() -> None:
    rows = [
        row(
            "bag",
            "en",
            "A black trolley bag by DKNY.",
            title="DKNY Black Trolley Bag",
            colour="black",
        ),
        row("tee", "en", None, title="DKNY Black Tee", colour="black"),
        row("skirt", "zh", "黑色针织裙。", title="裙", 颜色="黑色", 材质="针织"),
    ]
    # Invents a property and a material the products do not state: no candidate is publishable.
    generator = ScriptedGenerator(
        "This waterproof DKNY piece comes in black leather, a lovely buy."
    )
    finished: list[int] = []
    result = evaluate_rows(
        rows,
        DescriberPipeline(generator),
        Lexicons().default,
        batch_size=2,
        progress=finished.append,
    )
    assert finished == [2, 3]
    assert result["candidates"] == 4  # two English products, two attempts each
    assert result["candidate_unsupported_by_kind"] == {"material": 4, "property": 4}
    assert result["generated_share"] == 0.0
    assert result["reference_rows"] == 2
    assert 0.0 < result["rouge_l_f1"] <= 1.0
    assert result["bleu_4"] is not None
    assert set(result["by_language"]) == {"en", "zh"}
    english, chinese = result["by_language"]["en"], result["by_language"]["zh"]
    assert (english["rows"], english["reference_rows"], chinese["rows"]) == (2, 1, 1)
    assert chinese["description_words_median"] is None
    assert english["description_words_mean"] > 0
    assert chinese["description_chars_mean"] > 0


def test_evaluation_counts_generated_and_regenerated_as_generated() -> None:
    rows = [row("bag", "en", None, title="DKNY Black Trolley Bag", colour="black")]
    good = ScriptedGenerator("This DKNY trolley bag comes in black, ready for every trip you plan.")
    result = evaluate_rows(rows, DescriberPipeline(good), Lexicons().default)
    assert result["paths"] == {"generated": 1.0}
    assert result["generated_share"] == 1.0
    assert result["candidate_unsupported_by_kind"] == {}
    assert result["rouge_l_f1"] is None
    assert "by_language" not in result
