"""Reference-based text figures for the describer's evaluation: ROUGE-L, BLEU-4, distinct-n.

Pure Python and torch-free. Chinese is measured in characters (whitespace and punctuation
dropped), English in lower-cased ``\\w+`` words; `tokens` is the one place that decides.
"""

from __future__ import annotations

import math
import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Hashable, Sequence

_WORD = re.compile(r"\w+")


def tokens(text: str, language: str) -> list[str]:
    """Characters without whitespace/punctuation/symbols for ``zh``, else lower-cased words."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if language == "zh":
        return [
            char
            for char in text
            if not char.isspace() and unicodedata.category(char)[0] not in {"P", "S"}
        ]
    return _WORD.findall(text)


def ngrams(items: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The contiguous n-grams of `items`, in order."""
    return [tuple(items[index : index + n]) for index in range(len(items) - n + 1)]


def lcs_length(first: Sequence[Hashable], second: Sequence[Hashable]) -> int:
    """Longest common subsequence length, bit-parallel (Allison-Dix): O(len * len / wordsize)."""
    if len(first) < len(second):
        first, second = second, first
    if not second:
        return 0
    masks: dict[Hashable, int] = {}
    for position, item in enumerate(first):
        masks[item] = masks.get(item, 0) | (1 << position)
    everything = (1 << len(first)) - 1
    row = everything
    for item in second:
        matches = row & masks.get(item, 0)
        row = ((row + matches) | (row - matches)) & everything
    return len(first) - row.bit_count()


def rouge_l(candidate: Sequence[str], reference: Sequence[str]) -> float:
    """ROUGE-L F1 (beta = 1) of two token sequences; 0.0 when either is empty."""
    common = lcs_length(candidate, reference)
    if not common:
        return 0.0
    precision, recall = common / len(candidate), common / len(reference)
    return 2 * precision * recall / (precision + recall)


def corpus_bleu(
    candidates: Sequence[Sequence[str]], references: Sequence[Sequence[str]], max_n: int = 4
) -> float:
    """Corpus BLEU (Papineni et al. 2002), one reference per candidate, with brevity penalty.

    Clipped n-gram matches and candidate n-gram totals are summed over the corpus first. Smoothing
    is add-one on orders n > 1 (``(matches + 1) / (total + 1)``, Lin & Och 2004 applied to corpus
    counts); order 1 is not smoothed, so a corpus without one matching token scores 0.0.
    """
    matches, totals = [0] * max_n, [0] * max_n
    candidate_length = reference_length = 0
    for candidate, reference in zip(candidates, references, strict=True):
        candidate_length += len(candidate)
        reference_length += len(reference)
        for n in range(1, max_n + 1):
            found = Counter(ngrams(candidate, n))
            allowed = Counter(ngrams(reference, n))
            matches[n - 1] += sum(min(count, allowed[gram]) for gram, count in found.items())
            totals[n - 1] += sum(found.values())
    if not candidate_length or not matches[0]:
        return 0.0
    log_precision = math.log(matches[0] / totals[0])
    log_precision += sum(math.log((matches[n] + 1) / (totals[n] + 1)) for n in range(1, max_n))
    brevity = (
        1.0
        if candidate_length > reference_length
        else math.exp(1 - reference_length / candidate_length)
    )
    return brevity * math.exp(log_precision / max_n)


def distinct_n(texts: Sequence[Sequence[str]], n: int = 2) -> float:
    """Unique n-grams over all n-grams, pooled over `texts`; 0.0 when there are none."""
    grams = [gram for text in texts for gram in ngrams(text, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def median_and_mean(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Median and mean of `values`, or (None, None) when there are none."""
    if not values:
        return None, None
    return float(statistics.median(values)), statistics.fmean(values)
