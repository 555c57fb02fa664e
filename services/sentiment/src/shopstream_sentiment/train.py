"""Train the sentiment head: frozen encoder embeddings + NB-scaled hashed n-grams -> one
logistic regression, Platt-calibrated, with a calibrated neutral band.

Steps (``train_head``):

1. Read the CSV files, drop repeated texts, hold out ``test_fraction`` of every (file, label)
   group with the fixed seed (``datasets.split_held_out``). Neutral rows are not trained on.
   Training rows are routed to language groups (``head.language_group``); steps 3-4 run per
   group, so each group gets its own head.
2. Embed every review: whole-sentence chunks of about ``chunk_tokens`` tokens, encoded with the
   frozen encoder, averaged and re-normalised (``head.pool_passages``), exactly as the service
   does. Embeddings can be cached per passage in ``cache_dir`` (development only).
3. Choose the two L2 strengths (embedding block, lexical block) on one validation fold of a
   stratified k-fold split of the training rows; the naive-Bayes bucket scale is refitted
   inside each fold so a held-out fold never leaks into its own features.
4. Fit Platt scaling and the neutral band on the out-of-fold logits of the chosen setting
   (every training row scored by a model that did not see it), then fit the final model on
   all training rows.
5. Score the held-out rows (never seen by steps 2-4) and write the head and its metadata.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import torch

from shopstream.lexical import LexicalHasher
from shopstream_sentiment.datasets import LabelledReview, file_sha256, read_reviews, split_held_out
from shopstream_sentiment.head import (
    Chunking,
    LinearHead,
    SentimentHead,
    language_group,
    pool_passages,
    sigmoid,
)
from shopstream_sentiment.labelling import LabelRule, calibrate_neutral_band
from shopstream_sentiment.metrics import (
    classification_report,
    expected_calibration_error,
    log_loss,
)
from shopstream_sentiment.segmentation import chunk_text

logger = logging.getLogger("shopstream.sentiment")

FloatArray = npt.NDArray[np.float32]
IndexArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TrainOptions:
    encoder: str = "multilingual-e5-small"
    max_length: int = 256
    chunking: Chunking = field(default_factory=Chunking)
    lexical_bits: int = 18
    """Hash size of the lexical block (2**bits buckets); 0 trains on embeddings alone."""
    seed: int = 13
    test_fraction: float = 0.2
    folds: int = 5
    embedding_c: tuple[float, ...] = (0.003, 0.01)
    """Inverse L2 strengths tried for the embedding block (scikit-learn's ``C`` convention)."""
    lexical_c: tuple[float, ...] = (40.0, 80.0, 160.0)
    """Inverse L2 strengths tried for the lexical block; grams need far less shrinkage."""
    batch_size: int = 32
    device: str = "auto"
    threads: int | None = None
    cache_dir: Path | None = None


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


class PassageCache:
    """Per-passage embeddings on disk, keyed by encoder revision and passage text.

    Embedding a full training set takes tens of minutes on a small CPU; during development the
    cache (in a scratch directory, never committed) makes re-training take seconds.
    """

    def __init__(self, directory: Path | None, encoder: str, revision: str) -> None:
        self.path: Path | None = None
        self.vectors: dict[str, FloatArray] = {}
        if directory is None:
            return
        name = hashlib.sha256(f"{encoder}\0{revision}".encode()).hexdigest()[:16]
        self.path = directory / f"passages-{name}.npz"
        if self.path.is_file():
            with np.load(self.path) as stored:
                self.vectors = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))

    @staticmethod
    def key(passage: str) -> str:
        return hashlib.sha1(passage.encode("utf-8"), usedforsecurity=False).hexdigest()

    def save(self) -> None:
        if self.path is None or not self.vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self.vectors))
        np.savez(self.path, keys=keys, vectors=np.stack(list(self.vectors.values())))


class PassageEncoder(Protocol):
    """The part of ``shopstream.models.TextEncoder`` that training uses."""

    def encode(
        self, texts: Sequence[str], *, kind: Literal["query", "passage"], batch_size: int
    ) -> FloatArray: ...


def embed_reviews(
    texts: Sequence[str], options: TrainOptions, encoder: PassageEncoder, cache: PassageCache
) -> FloatArray:
    """One pooled, unit-length embedding per review, chunked like the service chunks."""
    budget, max_chunks = options.chunking.chunk_tokens, options.chunking.max_chunks
    groups_text = [[chunk.text for chunk in chunk_text(text, budget, max_chunks)] for text in texts]
    position: dict[str, int] = {}
    groups = [[position.setdefault(p, len(position)) for p in group] for group in groups_text]
    passages = list(position)
    missing = [p for p in passages if PassageCache.key(p) not in cache.vectors]
    if missing:
        logger.info("embedding %d passages (%d cached)", len(missing), len(passages) - len(missing))
        vectors = encoder.encode(missing, kind="query", batch_size=options.batch_size)
        for passage, vector in zip(missing, vectors, strict=True):
            cache.vectors[PassageCache.key(passage)] = vector
        cache.save()
    matrix = np.stack([cache.vectors[PassageCache.key(p)] for p in passages])
    return pool_passages(matrix, groups)


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


def stratified_folds(positive: npt.NDArray[np.bool_], folds: int, seed: int) -> IndexArray:
    """Fold number per row, each label dealt round-robin after a seeded shuffle."""
    assignment = np.zeros(len(positive), dtype=np.int64)
    rng = np.random.default_rng(seed)
    for value in (False, True):
        members = np.flatnonzero(positive == value)
        assignment[rng.permutation(members)] = np.arange(len(members)) % folds
    return assignment


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


def _fit_block(
    dense: FloatArray,
    lexical: SparseRows | None,
    positive: npt.NDArray[np.bool_],
    *,
    embedding_c: float,
    lexical_c: float,
    start: LogisticFit | None = None,
) -> tuple[LogisticFit, Standardiser, FloatArray | None]:
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
    return fit, standardiser, scale


def _logits(
    fit: LogisticFit,
    standardiser: Standardiser,
    scale: FloatArray | None,
    dense: FloatArray,
    lexical: SparseRows | None,
) -> FloatArray:
    logits = standardiser(dense) @ fit.dense + fit.bias
    if lexical is not None and scale is not None and fit.lexical is not None:
        logits = logits + (lexical.tensor(scale) @ torch.from_numpy(fit.lexical)).numpy()
    result: FloatArray = logits.astype(np.float32)
    return result


def binary_summary(
    probabilities: FloatArray, reviews: Sequence[LabelledReview], rule: LabelRule
) -> dict[str, Any]:
    """Held-out metrics of the positive-vs-negative call, plus the share called neutral."""
    truth = [review.label for review in reviews]
    decided = ["positive" if p >= 0.5 else "negative" for p in probabilities]
    report = classification_report(truth, decided, ("positive", "negative"))
    scores = [float(p) for p in probabilities]
    labels = [rule.label(p, r.rating)[0] for p, r in zip(scores, reviews, strict=True)]
    band_only = [rule.label(p)[0] for p in scores]
    positives = [label == "positive" for label in truth]
    count = max(len(reviews), 1)
    return {
        "rows": len(reviews),
        "accuracy": round(report.accuracy, 4),
        "macro_f1": round(report.macro_f1, 4),
        "neutral_share": round(labels.count("neutral") / count, 4),
        "neutral_share_text_only": round(band_only.count("neutral") / count, 4),
        "log_loss": round(log_loss(scores, positives), 4),
        "expected_calibration_error": round(expected_calibration_error(scores, positives), 4),
    }


@dataclass
class SplitData:
    train: list[LabelledReview]
    held_out: list[LabelledReview]
    files: list[dict[str, Any]]


def read_and_split(data: Sequence[Path], options: TrainOptions) -> SplitData:
    """All files' rows, split per file; neutral training rows are counted, not trained on."""
    split = SplitData([], [], [])
    for path in data:
        reviews = read_reviews(path)
        train_part, test_part = split_held_out(reviews, options.seed, options.test_fraction)
        split.train += [r for r in train_part if r.label != "neutral"]
        split.held_out += test_part
        split.files.append(
            {
                "file": path.name,
                "sha256": file_sha256(path),
                "rows": len(reviews),
                "train": sum(r.label != "neutral" for r in train_part),
                "held_out": len(test_part),
                "neutral_rows_not_trained": sum(r.label == "neutral" for r in train_part),
            }
        )
    if not split.train or not split.held_out:
        raise ValueError("need labelled rows on both sides of the split")
    return split


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
    options: TrainOptions,
) -> Selection:
    """Pick the two L2 strengths on one validation fold, then collect out-of-fold logits.

    Every grid point is fitted on folds 1..k-1 and scored on fold 0 (warm-starting from the
    previous point); the chosen point is then fitted on the other k-1 splits as well, so every
    training row gets a logit from a model that did not see it, for calibration.
    """
    folds = stratified_folds(positive, options.folds, options.seed)
    lexical_grid = options.lexical_c if lexical is not None else (1.0,)

    def fit_fold(
        fold: int, embedding_c: float, lexical_c: float, start: LogisticFit | None
    ) -> tuple[LogisticFit, FloatArray]:
        inside = np.flatnonzero(folds != fold)
        outside = np.flatnonzero(folds == fold)
        fit, standardiser, scale = _fit_block(
            dense[inside],
            lexical.rows(inside) if lexical is not None else None,
            positive[inside],
            embedding_c=embedding_c,
            lexical_c=lexical_c,
            start=start,
        )
        held = lexical.rows(outside) if lexical is not None else None
        return fit, _logits(fit, standardiser, scale, dense[outside], held)

    grid: dict[str, float] = {}
    logits_on_fold0: dict[tuple[float, float], FloatArray] = {}
    previous: LogisticFit | None = None
    validation = folds == 0
    for embedding_c in options.embedding_c:
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
    for fold in range(1, options.folds):
        _, logits = fit_fold(fold, embedding_c, lexical_c, None)
        out_of_fold[folds == fold] = logits
    logger.info(
        "out-of-fold accuracy at C=(%s, %s): %.4f",
        embedding_c,
        lexical_c,
        float(((out_of_fold >= 0) == positive).mean()),
    )
    return Selection(embedding_c, lexical_c, out_of_fold, grid)


def _key(embedding_c: float, lexical_c: float) -> str:
    return f"embedding_c={embedding_c},lexical_c={lexical_c}"


@dataclass
class TrainingResult:
    head: SentimentHead
    metadata: dict[str, Any]


@dataclass
class GroupFit:
    head: LinearHead
    calibrated_out_of_fold: FloatArray
    positive: npt.NDArray[np.bool_]
    record: dict[str, Any]


def fit_group(
    dense: FloatArray, texts: Sequence[str], positive: npt.NDArray[np.bool_], options: TrainOptions
) -> GroupFit:
    """One language group's head: strengths, Platt calibration, final fit on all its rows."""
    hasher = LexicalHasher(options.lexical_bits) if options.lexical_bits else None
    lexical = _sparse(hasher, texts) if hasher is not None else None
    selection = select_strengths(dense, lexical, positive, options)
    scale_and_shift = fit_platt(selection.out_of_fold, positive)
    fit, standardiser, scale = _fit_block(
        dense,
        lexical,
        positive,
        embedding_c=selection.embedding_c,
        lexical_c=selection.lexical_c,
    )
    # Fold the standardisation into the weights and the NB scale into the lexical weights, so
    # the service computes one dot product per block on raw features.
    head = LinearHead(
        embedding_weights=(fit.dense / standardiser.std).astype(np.float32),
        bias=float(fit.bias - (fit.dense * standardiser.mean / standardiser.std).sum()),
        calibration_scale=scale_and_shift[0],
        calibration_shift=scale_and_shift[1],
        lexical=hasher,
        lexical_weights=(
            (fit.lexical * scale).astype(np.float32)
            if fit.lexical is not None and scale is not None
            else None
        ),
    )
    calibrated = sigmoid(scale_and_shift[0] * selection.out_of_fold + scale_and_shift[1])
    record = {
        "train_rows": len(positive),
        "embedding_c": selection.embedding_c,
        "lexical_c": selection.lexical_c if hasher is not None else None,
        "validation_fold_accuracy": selection.grid,
        "out_of_fold_accuracy": round(float(((selection.out_of_fold >= 0) == positive).mean()), 4),
        "platt": [round(scale_and_shift[0], 6), round(scale_and_shift[1], 6)],
    }
    return GroupFit(head, calibrated, positive, record)


def train_head(
    data: Sequence[Path], out: Path, options: TrainOptions, command: str
) -> TrainingResult:
    """Train, calibrate, evaluate on the held-out split and write the head to ``out``."""
    from shopstream.models import TextEncoder, configure_threads  # noqa: PLC0415  heavy import

    started = time.perf_counter()
    configure_threads(options.threads)
    split = read_and_split(data, options)
    encoder = TextEncoder(options.encoder, device=options.device, max_length=options.max_length)
    encoder.load()
    cache = PassageCache(options.cache_dir, options.encoder, encoder.revision)
    embed_started = time.perf_counter()
    train_dense = embed_reviews([r.text for r in split.train], options, encoder, cache)
    test_dense = embed_reviews([r.text for r in split.held_out], options, encoder, cache)
    embedding_seconds = time.perf_counter() - embed_started
    encoder_info = {
        "id": options.encoder,
        "revision": encoder.revision,
        "dim": int(train_dense.shape[1]),
        "prefix": "query",
        "max_length": options.max_length,
    }
    encoder.unload()

    fit_started = time.perf_counter()
    train_groups = np.array([language_group(r.text) for r in split.train])
    fits: dict[str, GroupFit] = {}
    for group in sorted(set(train_groups.tolist())):
        rows = np.flatnonzero(train_groups == group)
        logger.info("fitting the %s head on %d reviews", group, len(rows))
        fits[group] = fit_group(
            train_dense[rows],
            [split.train[i].text for i in rows],
            np.array([split.train[i].label == "positive" for i in rows]),
            options,
        )
    neutral_band = calibrate_neutral_band(
        [float(p) for fit in fits.values() for p in fit.calibrated_out_of_fold],
        [bool(v) for fit in fits.values() for v in fit.positive],
    )
    fit_seconds = time.perf_counter() - fit_started
    head = SentimentHead(
        groups={name: fit.head for name, fit in fits.items()}, neutral_band=neutral_band
    )
    head.metadata = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "encoder": encoder_info,
        "chunking": {
            "chunk_tokens": options.chunking.chunk_tokens,
            "max_chunks": options.chunking.max_chunks,
        },
        "lexical": (
            {"bits": options.lexical_bits, "grams": "CJK chars 1-3, words 1-2", "nb_alpha": 1.0}
            if options.lexical_bits
            else None
        ),
        "data": split.files,
        "split": {
            "seed": options.seed,
            "test_fraction": options.test_fraction,
            "stratified_by": "file and label",
        },
        "language_groups": {
            "rule": "zh when the locale starts with zh, or without a locale when CJK characters "
            "are >= 30% of CJK characters plus other words; default otherwise",
            **{name: fit.record for name, fit in fits.items()},
        },
        "selection": (
            f"C grid {list(options.embedding_c)} x {list(options.lexical_c)} scored on fold 0 "
            f"of a stratified {options.folds}-fold split of each group's training rows"
        ),
        "calibration": f"Platt scaling per group on {options.folds}-fold out-of-fold logits",
        "neutral_band_rule": (
            "widest band around 0.5 with out-of-fold accuracy <= 0.70 inside it, edges within "
            "0.30-0.70, at most 10% of rows inside"
        ),
        "timing": {
            "embedding_seconds": round(embedding_seconds, 1),
            "fit_seconds": round(fit_seconds, 1),
        },
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    head.save(out)
    # Score the held-out rows through the saved file (float16 weights included), as served.
    saved = SentimentHead.load(out)
    texts = [r.text for r in split.held_out]
    probabilities = saved.probabilities(test_dense, texts, [language_group(t) for t in texts])
    rule = LabelRule(neutral_band=neutral_band)
    held_out: dict[str, Any] = {}
    for name in ["all", *(item["file"] for item in split.files)]:
        rows_of = [
            i
            for i, r in enumerate(split.held_out)
            if r.label != "neutral" and name in {"all", r.source}
        ]
        held_out[name] = binary_summary(
            probabilities[rows_of], [split.held_out[i] for i in rows_of], rule
        )
    head.metadata["metrics"] = {"held_out": held_out}
    head.metadata["timing"]["total_seconds"] = round(time.perf_counter() - started, 1)
    head.save(out)
    return TrainingResult(head=head, metadata=head.metadata)


def _sparse(hasher: LexicalHasher, texts: Sequence[str]) -> SparseRows:
    indptr, indices, values = hasher.transform(texts)
    return SparseRows(indptr, indices, values, hasher.size)
