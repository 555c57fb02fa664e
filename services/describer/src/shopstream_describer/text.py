"""Language-aware text helpers: normalisation, sentences, length limits, near-duplicates."""

from __future__ import annotations

import re
import unicodedata

_CJK = re.compile(r"[\u3400-\u9fff]")
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|(?<=\.)(?=\s)|\n+")
_SPACES = re.compile(r"\s+")


def is_chinese(locale: str) -> bool:
    return locale.split("-", 1)[0] == "zh"


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def normalise(text: str) -> str:
    """Casefolded NFKC with single spaces: the form every comparison works on."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def sentences(text: str) -> list[str]:
    """Sentences with their closing punctuation; blank pieces dropped."""
    return [piece.strip() for piece in _SENTENCE_END.split(text) if piece and piece.strip()]


def join_sentences(parts: list[str], locale: str) -> str:
    return ("" if is_chinese(locale) else " ").join(parts).strip()


def fit(text: str, limit: int, locale: str) -> str:
    """Cut `text` to `limit` characters at a sentence, else a word, boundary (never mid-word)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    kept = ""
    for sentence in sentences(text):
        candidate = join_sentences([kept, sentence], locale) if kept else sentence
        if len(candidate) > limit:
            break
        kept = candidate
    if kept:
        return kept
    if is_chinese(locale) and has_cjk(text):
        return text[:limit].rstrip("，、,;；：: ")
    cut = text[: limit + 1].rsplit(" ", 1)[0]
    return cut[:limit].rstrip(",;:–- ")


def _shingles(text: str, size: int = 3) -> set[str]:
    compact = normalise(text).replace(" ", "")
    if len(compact) <= size:
        return {compact}
    return {compact[index : index + size] for index in range(len(compact) - size + 1)}


def similarity(first: str, second: str) -> float:
    """Jaccard similarity of character trigrams: works the same for Chinese and English."""
    a, b = _shingles(first), _shingles(second)
    return len(a & b) / len(a | b) if a | b else 1.0


def distinct(texts: list[str], threshold: float) -> list[str]:
    """Keep texts in order, dropping each that is at least `threshold` similar to a kept one."""
    kept: list[str] = []
    for text in texts:
        if text and all(similarity(text, other) < threshold for other in kept):
            kept.append(text)
    return kept
