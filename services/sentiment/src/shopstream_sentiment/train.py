"""Train the sentiment head: frozen encoder embeddings + NB-scaled hashed n-grams -> one
logistic regression, Platt-calibrated, with a calibrated neutral band.

Steps (``train_head``):

1. Read the CSV files, drop repeated texts, hold out ``test_fraction`` of every (file, label)
   group with the fixed seed (``datasets.split_held_out``). Neutral rows are not trained on.
   Training rows are routed to language groups (``head.language_group``); steps 3-4 run per
   group, so each group gets its own head.
2. Embed every review: whole-sentence chunks of about ``chunk_tokens`` tokens, encoded with the
   frozen encoder, averaged and re-normalised (``head.pool_passages``), exactly as the service
   does. Embeddings can be cached per passage in ``cache_dir`` (development only;
   ``embedding_cache``).
3. Choose the two L2 strengths (embedding block, lexical block) on one validation fold of a
   stratified k-fold split of the training rows (``model_selection``); the naive-Bayes bucket
   scale is refitted inside each fold so a held-out fold never leaks into its own features.
4. Fit Platt scaling and the neutral band on the out-of-fold logits of the chosen setting
   (every training row scored by a model that did not see it), then fit the final model on
   all training rows (``logistic``).
5. Score the held-out rows (never seen by steps 2-4) and write the head and its metadata.

With ``finetune`` set, step 2 trains the encoder's top layers first (``finetune``): a dev share
of each (file, label) group of the training rows is set aside to choose the epoch, the heads are
fitted on the other training rows, and Platt scaling and the neutral band are fitted on the dev
rows' logits instead of out-of-fold ones, because the tuned layers have seen every other
training row and their out-of-fold logits would be over-confident.
"""

from __future__ import annotations

import logging
import platform
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from shopstream.lexical import LexicalHasher
from shopstream.models import TextEncoder, configure_threads
from shopstream_sentiment.datasets import LabelledReview, file_sha256, read_reviews, split_held_out
from shopstream_sentiment.embedding_cache import PassageCache, embed_reviews
from shopstream_sentiment.finetune import FinetuneOptions, TuningRows, finetune_encoder
from shopstream_sentiment.head import (
    Chunking,
    FloatArray,
    LinearHead,
    SentimentHead,
    language_group,
    sigmoid,
)
from shopstream_sentiment.labelling import LabelRule, calibrate_neutral_band
from shopstream_sentiment.logistic import SparseRows, fit_platt, fit_scaled
from shopstream_sentiment.metrics import (
    classification_report,
    expected_calibration_error,
    log_loss,
)
from shopstream_sentiment.model_selection import select_strengths

logger = logging.getLogger("shopstream.sentiment")


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
    finetune: FinetuneOptions | None = None
    """Train the encoder's top layers too; None keeps the encoder frozen."""
    dev_fraction: float = 0.1
    """Share of each (file, label) group of training rows that chooses the fine-tuning epoch
    and calibrates the heads; only used with ``finetune``."""


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
class TrainingResult:
    head: SentimentHead
    metadata: dict[str, Any]
    held_out: list[LabelledReview] = field(default_factory=list)
    held_out_probabilities: FloatArray | None = None
    """P(positive) of each held-out review, scored through the saved head at training time."""


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
    selection = select_strengths(
        dense,
        lexical,
        positive,
        folds=options.folds,
        seed=options.seed,
        embedding_grid=options.embedding_c,
        lexical_grid=options.lexical_c,
    )
    scale_and_shift = fit_platt(selection.out_of_fold, positive)
    final = fit_scaled(
        dense,
        lexical,
        positive,
        embedding_c=selection.embedding_c,
        lexical_c=selection.lexical_c,
    )
    fit, standardiser, scale = final.fit, final.standardiser, final.lexical_scale
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
    started = time.perf_counter()
    configure_threads(options.threads)
    split = read_and_split(data, options)
    encoder = TextEncoder(options.encoder, device=options.device, max_length=options.max_length)
    encoder.load()
    embed_started = time.perf_counter()
    tuned: TunedVectors | None = None
    if options.finetune is None:
        cache = PassageCache(options.cache_dir, options.encoder, encoder.revision)

        def embed(reviews: Sequence[LabelledReview]) -> FloatArray:
            texts = [r.text for r in reviews]
            return embed_reviews(
                texts, encoder, cache, chunking=options.chunking, batch_size=options.batch_size
            )

        train_dense = embed(split.train)
        test_dense = embed(split.held_out)
        dev = np.zeros(len(split.train), dtype=bool)
    else:
        tuned = tune_encoder(encoder, split, options, options.finetune)
        train_dense, test_dense, dev = tuned.train_dense, tuned.test_dense, tuned.dev
    embedding_seconds = time.perf_counter() - embed_started
    encoder_info: dict[str, Any] = {
        "id": options.encoder,
        "revision": encoder.revision,
        "dim": int(train_dense.shape[1]),
        "prefix": "query",
        "max_length": options.max_length,
    }
    if tuned is not None:
        encoder_info["fine_tuned"] = tuned.record
    encoder.unload()

    fit_started = time.perf_counter()
    train_groups = np.array([language_group(r.text) for r in split.train])
    fits: dict[str, GroupFit] = {}
    positive = np.array([r.label == "positive" for r in split.train])
    for group in sorted(set(train_groups.tolist())):
        rows = np.flatnonzero((train_groups == group) & ~dev)
        logger.info("fitting the %s head on %d reviews", group, len(rows))
        fits[group] = fit_group(
            train_dense[rows], [split.train[i].text for i in rows], positive[rows], options
        )
        if tuned is not None:
            calibration_rows = np.flatnonzero((train_groups == group) & dev)
            calibrate_on_dev(
                fits[group],
                train_dense[calibration_rows],
                [split.train[i].text for i in calibration_rows],
                positive[calibration_rows],
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
        "calibration": (
            f"Platt scaling per group on {options.folds}-fold out-of-fold logits"
            if tuned is None
            else "Platt scaling and neutral band per group on the dev rows' logits"
        ),
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
    if tuned is not None:
        head.encoder_weights = tuned.weights
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
    return TrainingResult(
        head=head,
        metadata=head.metadata,
        held_out=split.held_out,
        held_out_probabilities=probabilities,
    )


@dataclass
class TunedVectors:
    """Review vectors from a fine-tuned encoder, and what to ship and record of it."""

    train_dense: FloatArray
    test_dense: FloatArray
    dev: npt.NDArray[np.bool_]
    """Training rows set aside to choose the epoch and calibrate; never trained on."""
    weights: dict[str, npt.NDArray[np.float16]]
    record: dict[str, Any]


def dev_rows(
    reviews: Sequence[LabelledReview], fraction: float, seed: int
) -> npt.NDArray[np.bool_]:
    """A fixed share of each (file, label) group, chosen by a seeded permutation."""
    dev = np.zeros(len(reviews), dtype=bool)
    keys = sorted({(r.source, r.label) for r in reviews})
    for source, label in keys:
        members = [i for i, r in enumerate(reviews) if (r.source, r.label) == (source, label)]
        order = np.random.default_rng([seed, zlib.crc32(f"{source}\0{label}".encode())])
        chosen = order.permutation(len(members))[: round(fraction * len(members))]
        dev[[members[i] for i in chosen]] = True
    return dev


def tune_encoder(
    encoder: TextEncoder, split: SplitData, options: TrainOptions, finetune: FinetuneOptions
) -> TunedVectors:
    """Fine-tune the top layers on the training rows less the dev rows; vectors for all."""
    dev = dev_rows(split.train, options.dev_fraction, options.seed + 1)
    reviews = [*split.train, *split.held_out]
    texts = [r.text for r in reviews]
    rows = TuningRows(
        texts=texts,
        groups=[language_group(t) for t in texts],
        positive=np.array([r.label == "positive" for r in reviews]),
        train=np.flatnonzero(~dev).tolist(),
        dev=np.flatnonzero(dev).tolist(),
    )
    result = finetune_encoder(encoder, rows, options.chunking, finetune)
    count = len(split.train)
    return TunedVectors(
        train_dense=result.vectors[:count],
        test_dense=result.vectors[count:],
        dev=dev,
        weights=result.weights,
        record=result.record,
    )


def calibrate_on_dev(
    fit: GroupFit, dense: FloatArray, texts: Sequence[str], positive: npt.NDArray[np.bool_]
) -> None:
    """Refit a group's Platt scaling on rows neither its head nor the tuned layers saw; the
    neutral band is then fitted on these rows too (``calibrated_out_of_fold``)."""
    logits = fit.head.logits(dense, texts)
    scale, shift = fit_platt(logits, positive)
    fit.head.calibration_scale, fit.head.calibration_shift = scale, shift
    fit.calibrated_out_of_fold = sigmoid(scale * logits + shift)
    fit.positive = positive
    probabilities = [float(p) for p in fit.calibrated_out_of_fold]
    fit.record.update(
        {
            "platt": [round(scale, 6), round(shift, 6)],
            "dev_rows": len(positive),
            "dev_accuracy": round(float(((logits >= 0) == positive).mean()), 4),
            "dev_expected_calibration_error": round(
                expected_calibration_error(probabilities, [bool(v) for v in positive]), 4
            ),
        }
    )


def _sparse(hasher: LexicalHasher, texts: Sequence[str]) -> SparseRows:
    indptr, indices, values = hasher.transform(texts)
    return SparseRows(indptr, indices, values, hasher.size)
