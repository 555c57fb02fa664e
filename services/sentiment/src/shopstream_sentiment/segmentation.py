"""Cut reviews into sentences, clauses and encoder-sized chunks (Chinese and English).

Pure Python, no torch: the handlers, the aspect matcher and the unit tests use it without
loading a model.

* Sentences end at 。！？!?；;… or a line break, and at a full stop followed by white space,
  except after a few abbreviations (so ``3.5`` and ``e.g. this`` stay whole).
* Clauses split a sentence further at commas and before contrastive conjunctions (但是, 不过,
  可是, 然而, 只是, but, however, although, though, except, yet), because a review mixes
  polarities exactly there: "物流很快，但是包装破了", "Fits perfectly but the price is too high".
  A fragment too short to carry an opinion on its own ("Well,", "还行") is merged into its
  neighbour.
* Chunks pack whole sentences up to a token budget so that a long review is encoded as several
  passages whose embeddings are averaged, instead of being cut off at the encoder's limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE_END = re.compile(
    r"(?<=[。！？!?；;…\n])"
    r"|(?<=\.)(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bvs\.)(?=\s)"
)
_CLAUSE_BREAK = re.compile(
    r"(?<=[，,：:])"
    r"|(?=但是|不过|可是|然而|只是)"
    r"|(?<=\s)(?=(?:but|however|although|though|except|yet|whereas)\b)",
    re.IGNORECASE,
)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_TITLE_END = re.compile(r"[.!?。！？…]$")

MIN_CLAUSE_CJK_CHARS = 3
"""A Chinese fragment needs a subject and a judgement; two characters ("还行") rarely name an
aspect and read better with the clause before them."""
MIN_CLAUSE_WORDS = 2
"""Likewise for English: "Well," is not a finding on its own, "Fits perfectly" is."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """A span of a review handed to the encoder as one passage."""

    text: str
    estimated_tokens: int


def compose_review_text(text: str, title: str | None = None) -> str:
    """Join an optional review title and its body the way the head was trained.

    Titles are short verdicts ("Waste of money", "物超所值") that often carry the polarity more
    plainly than the body, so they are kept in front of it with a sentence break between.
    """
    body = text.strip()
    heading = (title or "").strip()
    if not heading:
        return body
    separator = " " if _TITLE_END.search(heading) else ". "
    if _CJK.search(heading) and not _TITLE_END.search(heading):
        separator = "。"
    return f"{heading}{separator}{body}"


def normalise(text: str) -> str:
    """Collapse runs of blanks; the characters themselves stay, so snippets quote the review."""
    return re.sub(r"[ \t\r\f\v]+", " ", text).strip()


def estimate_tokens(text: str) -> int:
    """Rough XLM-R token count without a tokenizer: one per CJK character, one per ~4 other
    characters (English subwords), at least one."""
    cjk = len(_CJK.findall(text))
    other = len(text) - cjk
    return max(1, cjk + (other + 3) // 4)


def split_sentences(text: str) -> list[str]:
    """Sentences in order, stripped, empty ones dropped; punctuation stays with its sentence."""
    return [part.strip() for part in _SENTENCE_END.split(normalise(text)) if part.strip()]


def _too_short(fragment: str) -> bool:
    if _CJK.search(fragment):
        return len(_CJK.findall(fragment)) < MIN_CLAUSE_CJK_CHARS
    return len(_WORD.findall(fragment)) < MIN_CLAUSE_WORDS


def split_clauses(sentence: str) -> list[str]:
    """A sentence's clauses, short fragments merged into the clause before (or after) them."""
    fragments = [part.strip() for part in _CLAUSE_BREAK.split(sentence) if part.strip()]
    clauses: list[str] = []
    pending = ""
    for fragment in fragments:
        joined = f"{pending}{_joiner(pending)}{fragment}" if pending else fragment
        if _too_short(joined):
            pending = joined
            continue
        clauses.append(joined)
        pending = ""
    if pending:
        if clauses:
            clauses[-1] = f"{clauses[-1]}{_joiner(clauses[-1])}{pending}"
        else:
            clauses.append(pending)
    return clauses


def _joiner(left: str) -> str:
    """Chinese fragments join without a space, English ones with one."""
    return "" if not left or _CJK.search(left[-1]) or left[-1] in "，：；。" else " "


def split_review_clauses(text: str) -> list[str]:
    """Every clause of a review, in order."""
    return [clause for sentence in split_sentences(text) for clause in split_clauses(sentence)]


def _hard_split(sentence: str, budget: int) -> list[str]:
    """Cut a sentence longer than the budget at word (English) or character (Chinese) limits."""
    pieces: list[str] = []
    current = ""
    for token in re.findall(r"[\u3400-\u9fff\uf900-\ufaff]|\S+\s*|\s+", sentence):
        candidate = current + token
        if current and estimate_tokens(candidate) > budget:
            pieces.append(current.strip())
            current = token
        else:
            current = candidate
    if current.strip():
        pieces.append(current.strip())
    return pieces


def chunk_text(text: str, budget: int, max_chunks: int) -> list[Chunk]:
    """Pack consecutive sentences into passages of at most ``budget`` estimated tokens.

    Past ``max_chunks`` the first ``max_chunks - 1`` passages and the last one are kept: the
    opening and the closing verdict carry most of a long review's polarity, and the cap bounds
    the cost of a pathological 20,000-character review.
    """
    if budget < 8:
        raise ValueError(f"chunk budget must be at least 8 tokens, got {budget}")
    if max_chunks < 1:
        raise ValueError(f"max_chunks must be at least 1, got {max_chunks}")
    pieces: list[str] = []
    for sentence in split_sentences(text):
        if estimate_tokens(sentence) > budget:
            pieces.extend(_hard_split(sentence, budget))
        else:
            pieces.append(sentence)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}{_joiner(current)}{piece}" if current else piece
        if current and estimate_tokens(candidate) > budget:
            chunks.append(current)
            current = piece
        else:
            current = candidate
    if current:
        chunks.append(current)
    if not chunks:
        chunks = [normalise(text) or text]
    if len(chunks) > max_chunks:
        chunks = [*chunks[: max_chunks - 1], chunks[-1]]
    return [Chunk(text=chunk, estimated_tokens=estimate_tokens(chunk)) for chunk in chunks]
