"""Labelled review files and the deterministic held-out split shared by training and evaluation.

A file is a UTF-8 CSV with a header holding at least ``label`` and ``text``; ``rating`` and
``title`` are used when present, other columns are ignored. Labels are ``positive``,
``negative`` or ``neutral`` (also ``pos``/``neg``/``neu`` and ``1``/``0``).

The split is stratified per file and label with a fixed seed: within each (file, label) group
the rows are shuffled by ``numpy.random.default_rng([seed, crc32(label)])`` and the first
``test_fraction`` of them are held out. It depends only on the file's own rows, so
``evaluate`` can recompute exactly which rows of a file the head never saw, and the training
metadata records each file's sha256 to tell whether a file is one the head was trained on.
Rows whose text repeats an earlier row of the same file are dropped first, so a duplicate
cannot sit on both sides of the split.
"""

from __future__ import annotations

import csv
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shopstream_sentiment.predictions import PolarityName
from shopstream_sentiment.segmentation import compose_review_text

_LABELS: dict[str, PolarityName] = {
    "positive": "positive",
    "pos": "positive",
    "1": "positive",
    "negative": "negative",
    "neg": "negative",
    "0": "negative",
    "neutral": "neutral",
    "neu": "neutral",
}


@dataclass(frozen=True, slots=True)
class LabelledReview:
    text: str
    """Title and body joined as the service joins them (``compose_review_text``)."""
    label: PolarityName
    rating: float | None
    source: str
    """File name the row came from."""
    shuffle_key: float
    """Random rank inside its (file, label) group; orders held-out rows for ``--limit``."""


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rating(raw: str | None) -> float | None:
    if raw is None or not raw.strip():
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def read_reviews(path: Path) -> list[LabelledReview]:
    """Rows of one file, duplicates of earlier texts dropped; unknown labels are an error."""
    reviews: list[LabelledReview] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"label", "text"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            raw_label = (row.get("label") or "").strip().lower()
            label = _LABELS.get(raw_label)
            if label is None:
                raise ValueError(f"{path}:{line}: unknown label {row.get('label')!r}")
            text = compose_review_text(row.get("text") or "", row.get("title"))
            if not text or text in seen:
                continue
            seen.add(text)
            reviews.append(
                LabelledReview(
                    text=text,
                    label=label,
                    rating=_rating(row.get("rating")),
                    source=path.name,
                    shuffle_key=0.0,
                )
            )
    return reviews


def split_held_out(
    reviews: list[LabelledReview], seed: int, test_fraction: float
) -> tuple[list[LabelledReview], list[LabelledReview]]:
    """(train, held-out) of one file's rows, stratified by label; held-out in shuffled order."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    train: list[LabelledReview] = []
    held_out: list[LabelledReview] = []
    for label in sorted({review.label for review in reviews}):
        group = [review for review in reviews if review.label == label]
        rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
        order = rng.permutation(len(group))
        keys = rng.random(len(group))
        cut = round(test_fraction * len(group))
        for rank, index in enumerate(order):
            keyed = LabelledReview(
                text=group[index].text,
                label=group[index].label,
                rating=group[index].rating,
                source=group[index].source,
                shuffle_key=float(keys[rank]),
            )
            (held_out if rank < cut else train).append(keyed)
    held_out.sort(key=lambda review: review.shuffle_key)
    return train, held_out


def shuffled(reviews: list[LabelledReview], seed: int) -> list[LabelledReview]:
    """All rows in a seeded random order, so that ``--limit`` takes a mixed sample."""
    keys = np.random.default_rng(seed).random(len(reviews))
    order = np.argsort(keys, kind="stable")
    return [reviews[int(index)] for index in order]
