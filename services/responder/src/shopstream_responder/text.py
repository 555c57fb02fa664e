"""Language-aware text helpers for Chinese and English: sentences, locale, overlap terms."""

from __future__ import annotations

import re
import unicodedata

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# A sentence ends at Chinese end punctuation, or at English end punctuation followed by space;
# "3.5 kg" and "e.g." inside a sentence stay intact because no space follows the dot.
_SENTENCE_END = re.compile(r"(?<=[。！？；!?])\s*|(?<=[.;])\s+|\n+")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_ENGLISH_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "do",
        "does",
        "did",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "have",
        "has",
        "had",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "how",
        "when",
        "where",
        "why",
        "please",
        "help",
        "want",
        "need",
        "like",
        "know",
        "tell",
        "get",
        "about",
        "any",
        "some",
    }
)


def normalise(text: str) -> str:
    """Collapsed spaces (ideographic ones too); the characters themselves stay as written."""
    return re.sub(r"[ \t\u3000]+", " ", text).strip()


def fold(text: str) -> str:
    """For matching only: NFKC (full-width Latin, digits and punctuation to half-width),
    lower case, collapsed spaces."""
    return normalise(unicodedata.normalize("NFKC", text)).lower()


def cjk_share(text: str) -> float:
    letters = [char for char in text if char.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for char in letters if _CJK.match(char)) / len(letters)


def detect_locale(text: str) -> str:
    """``zh`` when Chinese characters make up a fifth of the letters, else ``en``."""
    return "zh" if cjk_share(text) >= 0.2 else "en"


def language_of(locale: str) -> str:
    """The language part of a locale: ``zh-CN`` -> ``zh``."""
    return locale.split("-", 1)[0].lower()


def weighted_length(text: str) -> int:
    """Length with each Chinese character counted twice: closer to the encoder's token cost."""
    return len(text) + len(_CJK.findall(text))


def split_sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def overlap_terms(text: str) -> set[str]:
    """Terms for lexical overlap: English content words and Chinese character bigrams."""
    lowered = fold(text)
    terms = {word for word in _WORD.findall(lowered) if word not in _ENGLISH_STOPWORDS}
    for run in re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff]+", lowered):
        terms.update(run[i : i + 2] for i in range(max(1, len(run) - 1)))
    return terms


def mask_digit_runs(text: str, min_digits: int) -> str:
    """Blank out runs of at least `min_digits` digits (with a leading # or №); 0 keeps all."""
    if min_digits <= 0:
        return text
    return re.sub(rf"[#№]?\d{{{min_digits},}}", " ", text)
