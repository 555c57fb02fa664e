"""Hashed n-gram features: the cheap lexical block beside a sentence embedding.

Used by the sentiment head and the responder's per-shop article re-ranker. Needs numpy (the
``models`` extra) but never torch, so a head can score without loading the encoder's stack.

A frozen sentence encoder blurs decisive words ("not worth it", "退货", "差评") into a
general-topic vector; a linear model over hashed n-grams sees them directly. Both go into one
logistic regression.

Grams: Chinese characters as unigrams, bigrams and trigrams of each CJK run (Chinese has no
spaces, and two- or three-character words carry most opinions); other scripts as lower-cased
word unigrams and bigrams. Each gram is hashed with CRC-32 (stable across processes and
platforms, unlike Python's ``hash``) into ``2**bits`` buckets. A row holds ``1 + log(count)``
per bucket, L2-normalised, times the bucket's naive-Bayes log-count ratio
``log(P(bucket | positive) / P(bucket | negative))`` from the training set (Wang & Manning's
NBSVM): the ratio tells the linear model up front which grams lean which way, which measured
+1.3 points (Chinese) and +2.8 points (English) over plain tf-idf grams. Pure numpy, no torch.
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


def fold(text: str) -> str:
    """NFKC and lower case, for matching keywords: full-width letters and capitals match too."""
    return unicodedata.normalize("NFKC", text).casefold()


IndexArray = npt.NDArray[np.int64]

_RUNS = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+|[^\W_]+(?:'[^\W_]+)?")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
CJK_ORDERS = (1, 2, 3)
WORD_ORDERS = (1, 2)


def grams(text: str) -> list[str]:
    """The n-grams of a text, prefixed by kind so a character and a word never collide."""
    result: list[str] = []
    words: list[str] = []

    def flush_words() -> None:
        for order in WORD_ORDERS:
            result.extend(
                "w:" + " ".join(words[i : i + order]) for i in range(len(words) - order + 1)
            )
        words.clear()

    for run in _RUNS.findall(fold(text)):
        if _CJK.match(run):
            flush_words()
            for order in CJK_ORDERS:
                result.extend("c:" + run[i : i + order] for i in range(len(run) - order + 1))
        else:
            words.append(run)
    flush_words()
    return result


class LexicalHasher:
    """Turn texts into sparse rows (CSR parts) of hashed, normalised n-gram counts.

    The naive-Bayes scale is applied by training (``shopstream_sentiment.logistic.SparseRows``)
    and folded into the saved weights, so serving only needs the unscaled rows.
    """

    def __init__(self, bits: int) -> None:
        if not 8 <= bits <= 24:
            raise ValueError(f"hash bits must be in [8, 24], got {bits}")
        self.bits = bits
        self.size = 1 << bits

    def bucket_counts(self, text: str) -> Counter[int]:
        mask = self.size - 1
        return Counter(zlib.crc32(gram.encode("utf-8")) & mask for gram in grams(text))

    def transform(self, texts: Sequence[str]) -> tuple[IndexArray, IndexArray, FloatArray]:
        """CSR ``(indptr, indices, values)`` of shape ``(len(texts), size)``."""
        indptr = [0]
        indices: list[int] = []
        values: list[float] = []
        for text in texts:
            counts = self.bucket_counts(text)
            buckets = sorted(counts)
            weights = [1.0 + math.log(counts[b]) for b in buckets]
            norm = math.sqrt(sum(w * w for w in weights)) or 1.0
            indices.extend(buckets)
            values.extend(w / norm for w in weights)
            indptr.append(len(indices))
        return (
            np.asarray(indptr, dtype=np.int64),
            np.asarray(indices, dtype=np.int64),
            np.asarray(values, dtype=np.float32),
        )

    def dot(self, texts: Sequence[str], weights: FloatArray) -> FloatArray:
        """Each text's row times a weight vector: the lexical block's share of the logit."""
        indptr, indices, values = self.transform(texts)
        rows = np.repeat(np.arange(len(texts)), np.diff(indptr))
        sums = np.bincount(rows, weights=values * weights[indices], minlength=len(texts))
        result: FloatArray = sums.astype(np.float32)
        return result
