"""The sentiment head's learner: a two-block L2 logistic regression and Platt scaling, in torch.

The dense block is the standardised encoder embedding; the optional lexical block is hashed
n-gram presence scaled by naive-Bayes log-count ratios. Each block has its own L2 strength.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from shopstream_sentiment.head import FloatArray

logger = logging.getLogger("shopstream.sentiment")

IndexArray = npt.NDArray[np.int64]


@dataclass
class SparseRows:
    """CSR parts of the unscaled lexical rows."""

    indptr: IndexArray
    indices: IndexArray
    values: FloatArray
    width: int

    def rows(self, selection: IndexArray) -> SparseRows:
        starts, ends = self.indptr[selection], self.indptr[selection + 1]
        lengths = ends - starts
        gather = np.concatenate(
            [np.arange(s, e) for s, e in zip(starts, ends, strict=True)] or [np.zeros(0, int)]
        ).astype(np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return SparseRows(indptr, self.indices[gather], self.values[gather], self.width)

    def presence(self, positive: npt.NDArray[np.bool_], alpha: float = 1.0) -> FloatArray:
        """Naive-Bayes log-count ratios of bucket presence in positive vs negative rows."""
        counts = np.full((2, self.width), alpha, dtype=np.float64)
        row_of = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        labels = positive[row_of].astype(np.int64)
        np.add.at(counts, (labels, self.indices), 1.0)
        shares = counts / counts.sum(axis=1, keepdims=True)
        ratios: FloatArray = np.log(shares[1] / shares[0]).astype(np.float32)
        return ratios

    def tensor(self, scale: FloatArray) -> torch.Tensor:
        return torch.sparse_csr_tensor(
            torch.from_numpy(self.indptr),
            torch.from_numpy(self.indices),
            torch.from_numpy(self.values * scale[self.indices]),
            size=(len(self.indptr) - 1, self.width),
        )


@dataclass
class LogisticFit:
    dense: FloatArray
    lexical: FloatArray | None
    bias: float


@dataclass
class SparseOperator:
    """A CSR matrix with its transpose, so both products of a gradient step are fast.

    torch's autograd through a sparse CSR product rebuilds the transpose on every backward pass
    (over a second per step at 2**18 columns); keeping it once makes a step about 15x cheaper.
    """

    forward: torch.Tensor
    transposed: torch.Tensor

    @classmethod
    def of(cls, matrix: torch.Tensor) -> SparseOperator:
        transposed = matrix.to_sparse_coo().t().coalesce().to_sparse_csr()  # type: ignore[no-untyped-call]
        return cls(matrix, transposed)

    @property
    def width(self) -> int:
        return int(self.forward.shape[1])


def fit_logistic(
    dense: FloatArray,
    lexical: SparseOperator | None,
    positive: npt.NDArray[np.bool_],
    *,
    embedding_c: float,
    lexical_c: float,
    start: LogisticFit | None = None,
    max_iter: int = 400,
) -> LogisticFit:
    """L2-regularised logistic regression with one strength per block, by full-batch L-BFGS.

    The objective is scikit-learn's, per block: summed log loss + ||w||^2 / (2 C). Gradients
    are written out by hand (see ``SparseOperator``) rather than taken by autograd. ``start``
    warm-starts from a neighbouring solution (the same fold at the previous grid point), which
    cuts the iterations of a cross-validation sweep several-fold.
    """
    x = torch.from_numpy(dense)
    y = torch.from_numpy(positive.astype(np.float32))
    width = lexical.width if lexical is not None else 0
    # One flat parameter vector: [dense weights | lexical weights | bias].
    params = torch.zeros(dense.shape[1] + width + 1)
    split = (dense.shape[1], dense.shape[1] + width)
    if start is not None:
        params[: split[0]] = torch.from_numpy(start.dense)
        if start.lexical is not None and lexical is not None:
            params[split[0] : split[1]] = torch.from_numpy(start.lexical)
        params[-1] = start.bias
    params.requires_grad = True
    optimiser = torch.optim.LBFGS(
        [params],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-3,
        tolerance_change=1e-6,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        with torch.no_grad():
            w_dense, w_lexical, bias = params[: split[0]], params[split[0] : split[1]], params[-1]
            logits = x @ w_dense + bias
            if lexical is not None:
                logits = logits + lexical.forward @ w_lexical
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum")
            loss = loss + (w_dense @ w_dense) / (2 * embedding_c)
            residual = torch.sigmoid(logits) - y
            gradient = torch.empty_like(params)
            gradient[: split[0]] = x.T @ residual + w_dense / embedding_c
            if lexical is not None:
                loss = loss + (w_lexical @ w_lexical) / (2 * lexical_c)
                lexical_gradient = lexical.transposed @ residual + w_lexical / lexical_c
                gradient[split[0] : split[1]] = lexical_gradient
            gradient[-1] = residual.sum()
        params.grad = gradient
        return loss

    optimiser.step(objective)  # type: ignore[no-untyped-call]
    state = optimiser.state[params]
    logger.debug(
        "L-BFGS: %s iterations, %s evaluations", state.get("n_iter"), state.get("func_evals")
    )
    values = params.detach().numpy()
    return LogisticFit(
        dense=values[: split[0]].copy(),
        lexical=values[split[0] : split[1]].copy() if lexical is not None else None,
        bias=float(values[-1]),
    )


def fit_platt(logits: FloatArray, positive: npt.NDArray[np.bool_]) -> tuple[float, float]:
    """(scale, shift) minimising the log loss of sigmoid(scale * logit + shift)."""
    x = torch.from_numpy(logits.astype(np.float32))
    y = torch.from_numpy(positive.astype(np.float32))
    params = torch.tensor([1.0, 0.0], requires_grad=True)
    optimiser = torch.optim.LBFGS([params], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(params[0] * x + params[1], y)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimiser.step(objective)  # type: ignore[no-untyped-call]
    scale, shift = (float(v) for v in params.detach())
    return scale, shift


@dataclass
class Standardiser:
    mean: FloatArray
    std: FloatArray

    @classmethod
    def fit(cls, rows: FloatArray) -> Standardiser:
        return cls(rows.mean(axis=0), np.maximum(rows.std(axis=0), 1e-6))

    def __call__(self, rows: FloatArray) -> FloatArray:
        result: FloatArray = ((rows - self.mean) / self.std).astype(np.float32)
        return result


@dataclass
class ScaledFit:
    """A fit together with the feature scaling it was fitted under, to score new rows alike."""

    fit: LogisticFit
    standardiser: Standardiser
    lexical_scale: FloatArray | None
    """Naive-Bayes ratios of the rows it was fitted on; None without a lexical block."""

    def logits(self, dense: FloatArray, lexical: SparseRows | None) -> FloatArray:
        logits = self.standardiser(dense) @ self.fit.dense + self.fit.bias
        scale = self.lexical_scale
        if lexical is not None and scale is not None and self.fit.lexical is not None:
            logits = logits + (lexical.tensor(scale) @ torch.from_numpy(self.fit.lexical)).numpy()
        result: FloatArray = logits.astype(np.float32)
        return result


def fit_scaled(
    dense: FloatArray,
    lexical: SparseRows | None,
    positive: npt.NDArray[np.bool_],
    *,
    embedding_c: float,
    lexical_c: float,
    start: LogisticFit | None = None,
) -> ScaledFit:
    """Standardise the embeddings and NB-scale the grams on these rows alone, then fit."""
    standardiser = Standardiser.fit(dense)
    scale = lexical.presence(positive) if lexical is not None else None
    fit = fit_logistic(
        standardiser(dense),
        SparseOperator.of(lexical.tensor(scale))
        if lexical is not None and scale is not None
        else None,
        positive,
        embedding_c=embedding_c,
        lexical_c=lexical_c,
        start=start,
    )
    return ScaledFit(fit, standardiser, scale)
