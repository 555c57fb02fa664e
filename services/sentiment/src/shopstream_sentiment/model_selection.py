"""Choosing the head's two L2 strengths by cross-validation, and its out-of-fold logits.

The naive-Bayes bucket scale is refitted inside each fold (``logistic.fit_scaled``), so a
held-out fold never leaks into its own features.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shopstream_sentiment.head import FloatArray
from shopstream_sentiment.logistic import IndexArray, LogisticFit, SparseRows, fit_scaled

logger = logging.getLogger("shopstream.sentiment")


def stratified_folds(positive: npt.NDArray[np.bool_], folds: int, seed: int) -> IndexArray:
    """Fold number per row, each label dealt round-robin after a seeded shuffle."""
    assignment = np.zeros(len(positive), dtype=np.int64)
    rng = np.random.default_rng(seed)
    for value in (False, True):
        members = np.flatnonzero(positive == value)
        assignment[rng.permutation(members)] = np.arange(len(members)) % folds
    return assignment


@dataclass
class Selection:
    embedding_c: float
    lexical_c: float
    out_of_fold: FloatArray
    grid: dict[str, float]


def select_strengths(
    dense: FloatArray,
    lexical: SparseRows | None,
    positive: npt.NDArray[np.bool_],
    *,
    folds: int,
    seed: int,
    embedding_grid: Sequence[float],
    lexical_grid: Sequence[float],
) -> Selection:
    """Pick the two L2 strengths on one validation fold, then collect out-of-fold logits.

    Every grid point is fitted on folds 1..k-1 and scored on fold 0 (warm-starting from the
    previous point); the chosen point is then fitted on the other k-1 splits as well, so every
    training row gets a logit from a model that did not see it, for calibration. Without a
    lexical block its grid is moot and one placeholder strength is used.
    """
    fold_of = stratified_folds(positive, folds, seed)
    lexical_grid = lexical_grid if lexical is not None else (1.0,)

    def fit_fold(
        fold: int, embedding_c: float, lexical_c: float, start: LogisticFit | None
    ) -> tuple[LogisticFit, FloatArray]:
        inside = np.flatnonzero(fold_of != fold)
        outside = np.flatnonzero(fold_of == fold)
        fitted = fit_scaled(
            dense[inside],
            lexical.rows(inside) if lexical is not None else None,
            positive[inside],
            embedding_c=embedding_c,
            lexical_c=lexical_c,
            start=start,
        )
        held = lexical.rows(outside) if lexical is not None else None
        return fitted.fit, fitted.logits(dense[outside], held)

    grid: dict[str, float] = {}
    logits_on_fold0: dict[tuple[float, float], FloatArray] = {}
    previous: LogisticFit | None = None
    validation = fold_of == 0
    for embedding_c in embedding_grid:
        for lexical_c in lexical_grid:
            previous, logits = fit_fold(0, embedding_c, lexical_c, previous)
            accuracy = float(((logits >= 0) == positive[validation]).mean())
            grid[_key(embedding_c, lexical_c)] = round(accuracy, 4)
            logits_on_fold0[(embedding_c, lexical_c)] = logits
            logger.info("validation C=(%s, %s): accuracy %.4f", embedding_c, lexical_c, accuracy)
    best = max(grid, key=lambda key: grid[key])
    embedding_c, lexical_c = next(k for k in logits_on_fold0 if _key(*k) == best)
    out_of_fold = np.zeros(len(positive), dtype=np.float32)
    out_of_fold[validation] = logits_on_fold0[(embedding_c, lexical_c)]
    for fold in range(1, folds):
        _, logits = fit_fold(fold, embedding_c, lexical_c, None)
        out_of_fold[fold_of == fold] = logits
    logger.info(
        "out-of-fold accuracy at C=(%s, %s): %.4f",
        embedding_c,
        lexical_c,
        float(((out_of_fold >= 0) == positive).mean()),
    )
    return Selection(embedding_c, lexical_c, out_of_fold, grid)


def _key(embedding_c: float, lexical_c: float) -> str:
    return f"embedding_c={embedding_c},lexical_c={lexical_c}"
