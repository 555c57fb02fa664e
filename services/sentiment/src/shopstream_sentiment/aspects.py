"""Which aspects of a product (quality, price, delivery, ...) a review clause talks about.

The catalogue lives in an editable JSON file (``data/aspects.json`` by default; operators point
``SENTIMENT_MODEL__ASPECTS`` at their own). Each aspect has Chinese and English keywords and a
few prototype sentences. A clause (see ``segmentation.split_clauses``) gets:

1. every aspect one of whose keywords it contains: Chinese keywords as substrings, English
   ones as whole words, case-insensitive, ``*`` at the end matching any ending;
2. failing that, the single aspect whose prototype direction is most similar to the clause's
   embedding, if the similarity reaches the catalogue's ``prototype_threshold`` (see
   ``PrototypeIndex`` for why plain cosine to the prototypes does not work);
3. failing that, nothing: a clause that names no aspect ("I bought it for my son") is not a
   finding, and reporting it as ``other`` would only add noise to the pain points.

No torch here: similarities are numpy dot products of vectors the model computed, so the
keyword side is unit-tested without loading a model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shopstream.lexical import fold
from shopstream_sentiment.segmentation import split_review_clauses

FloatMatrix = npt.NDArray[np.float32]

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
MAX_CLAUSES_PER_REVIEW = 24
"""Clauses scored per review; a 300-sentence review still costs a bounded encoder time."""


@dataclass(frozen=True, slots=True)
class AspectSpec:
    name: str
    keywords: tuple[str, ...]
    prototypes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClauseAspects:
    """A clause of a review and the aspects its keywords name (empty: ask the prototypes)."""

    clause: str
    aspects: tuple[str, ...]


def _keyword_pattern(keyword: str) -> str:
    folded = fold(keyword.strip())
    prefix = folded.endswith("*")
    stem = re.escape(folded.rstrip("*"))
    if _CJK.search(folded):
        return stem
    # English: whole words, so "fit" does not fire inside "benefit" nor "late" in "chocolate".
    return rf"\b{stem}" + (r"\w*" if prefix else r"\b")


class AspectCatalog:
    """The aspects, their compiled keyword patterns and their prototype sentences."""

    def __init__(self, aspects: Sequence[AspectSpec], prototype_threshold: float) -> None:
        if not aspects:
            raise ValueError("an aspect catalogue needs at least one aspect")
        names = [aspect.name for aspect in aspects]
        if len(set(names)) != len(names):
            raise ValueError(f"aspect names repeat: {names}")
        self.aspects = tuple(aspects)
        self.prototype_threshold = prototype_threshold
        self._patterns = [
            (
                aspect.name,
                re.compile("|".join(_keyword_pattern(k) for k in aspect.keywords if k.strip())),
            )
            for aspect in aspects
            if any(k.strip() for k in aspect.keywords)
        ]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(aspect.name for aspect in self.aspects)

    @classmethod
    def from_file(cls, path: Path) -> AspectCatalog:
        return cls.from_mapping(json.loads(path.read_text(encoding="utf-8")), source=str(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], source: str = "<mapping>") -> AspectCatalog:
        """Parse the JSON layout of ``data/aspects.json``; errors name the file and aspect."""
        raw_aspects = data.get("aspects")
        threshold = data.get("prototype_threshold", 0.3)
        if not isinstance(raw_aspects, Mapping) or not isinstance(threshold, int | float):
            raise TypeError(f"{source}: expected 'aspects' (object) and 'prototype_threshold'")
        specs = []
        for name, body in raw_aspects.items():
            if not isinstance(body, Mapping):
                raise TypeError(f"{source}: aspect {name!r} must be an object")
            specs.append(
                AspectSpec(
                    name=str(name),
                    keywords=_strings(body.get("keywords", {}), f"{source}: {name}.keywords"),
                    prototypes=_strings(body.get("prototypes", {}), f"{source}: {name}.prototypes"),
                )
            )
        return cls(specs, float(threshold))

    def keyword_aspects(self, clause: str) -> tuple[str, ...]:
        """Aspects whose keywords occur in the clause, in catalogue order."""
        folded = fold(clause)
        return tuple(name for name, pattern in self._patterns if pattern.search(folded))

    def clauses(self, text: str) -> list[ClauseAspects]:
        """A review's clauses (at most ``MAX_CLAUSES_PER_REVIEW``) with their keyword aspects."""
        return [
            ClauseAspects(clause=clause, aspects=self.keyword_aspects(clause))
            for clause in split_review_clauses(text)[:MAX_CLAUSES_PER_REVIEW]
        ]

    def prototypes(self) -> list[tuple[str, str]]:
        """(aspect, sentence) for every prototype sentence, for the model to embed once."""
        return [(a.name, sentence) for a in self.aspects for sentence in a.prototypes]


class PrototypeIndex:
    """Aspect directions in embedding space, for clauses that no keyword names.

    Raw e5 cosines between any two review clauses sit around 0.8-0.93 whatever they talk about:
    the vectors share a large common component (review-ness, language) and polarity weighs more
    than topic. So the index subtracts the mean of all prototype vectors and represents each
    aspect by the mean of its prototypes (one positive and one negative sentence per language,
    so polarity cancels); a clause is compared, centred the same way, by cosine to each
    direction. On a sample of 169 keyword-labelled development clauses, the best direction
    agreed with the keywords for 100% of the clauses scoring >= 0.30 (raw cosine: 66%).
    """

    def __init__(self, vectors: FloatMatrix, aspects: Sequence[str]) -> None:
        if len(vectors) != len(aspects):
            raise ValueError("need one aspect name per prototype vector")
        self.names = tuple(dict.fromkeys(aspects))
        self.centre = vectors.mean(axis=0) if len(vectors) else np.zeros(0, dtype=np.float32)
        labels = np.array(aspects)
        directions = [vectors[labels == name].mean(axis=0) - self.centre for name in self.names]
        self.directions = _unit(np.stack(directions)) if directions else np.zeros((0, 0))

    def nearest(self, clause_vectors: FloatMatrix, threshold: float) -> list[str | None]:
        """Per clause, the aspect of the most similar direction, or None below the threshold."""
        if len(clause_vectors) == 0:
            return []
        if not self.names:
            return [None] * len(clause_vectors)
        similarity = _unit(clause_vectors - self.centre) @ self.directions.T
        best = similarity.argmax(axis=1)
        return [
            self.names[int(index)] if similarity[row, index] >= threshold else None
            for row, index in enumerate(best)
        ]


def _unit(rows: FloatMatrix) -> FloatMatrix:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    result: FloatMatrix = (rows / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


def _strings(value: object, where: str) -> tuple[str, ...]:
    """Flatten ``{"zh": [...], "en": [...]}`` (or a plain list) into one tuple of strings."""
    if isinstance(value, Mapping):
        items: list[object] = [item for group in value.values() for item in _as_list(group, where)]
    else:
        items = _as_list(value, where)
    if not all(isinstance(item, str) for item in items):
        raise TypeError(f"{where}: expected strings")
    return tuple(str(item) for item in items)


def _as_list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise TypeError(f"{where}: expected a list of strings")
    return list(value)
