"""Fine-tune the encoder's top layers for sentiment, on a small CPU in minutes.

A frozen encoder with a linear head reached its ceiling (the head's metadata records what was
tried). Training the whole encoder on 2 CPU cores would take hours per epoch, so only the top
``layers`` transformer layers are trained, together with one linear head per language group:

1. Every review is chunked exactly as the service chunks it (``segmentation.chunk_text``) and
   tokenised exactly as ``TextEncoder.encode`` tokenises a query.
2. The frozen lower layers run once over every chunk; the input of the first trained layer is
   kept per token in float16 (``LayerInputs``, about 0.8 KB per token).
3. Each step runs only the trained layers on whole reviews: chunk vectors are mean-pooled and
   normalised, then averaged per review and normalised again (``head.pool_passages`` in torch),
   so training sees the vectors the service will compute. Loss: binary cross-entropy of the
   group's linear head. AdamW, linear warm-up and decay, gradient clipping at 1.
4. With ``average_decay`` set, an exponential moving average of the trained weights is kept
   step by step (Polyak averaging): a smoother point than the last step's, at no cost to
   inference, because what ships is still one set of weights.
5. After each epoch the dev rows (never trained on) are scored, with the epoch's weights and
   with their average; the candidate with the best dev accuracy summed over groups is kept.

What ships is the trained layers' weights (float16, with the head); the service loads the same
encoder and overwrites those layers at load (``TextEncoder.replace_weights``), so inference
costs exactly what the frozen encoder costs.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from shopstream.models import LayerStack, TextEncoder, transformer_layers
from shopstream.models.batching import padded_batches
from shopstream_sentiment.head import Chunking, FloatArray
from shopstream_sentiment.segmentation import chunk_text

logger = logging.getLogger("shopstream.sentiment")

LOGIT_SCALE = 10.0
"""Review vectors are unit length; scaling them starts the heads' logits in a useful range."""


@dataclass(frozen=True)
class FinetuneOptions:
    layers: int = 2
    """Top transformer layers trained; the rest of the encoder stays frozen."""
    epochs: int = 2
    learning_rate: float = 1e-4
    head_learning_rate: float = 3e-3
    weight_decay: float = 0.01
    warmup_share: float = 0.06
    batch_chunks: int = 32
    batch_tokens: int = 4096
    """A batch holds whole reviews: at most this many chunks, and chunks x width tokens."""
    seed: int = 13
    average_decay: float = 0.0
    """Decay of the moving average of the weights per step (0 = none); each epoch's average
    is a candidate beside the epoch's own weights."""


@dataclass
class ChunkedReviews:
    """Every review's chunks as token ids; ``chunks_of[r]`` indexes ``token_ids``."""

    token_ids: list[list[int]]
    chunks_of: list[list[int]]

    @property
    def lengths(self) -> npt.NDArray[np.int64]:
        return np.array([len(ids) for ids in self.token_ids], dtype=np.int64)


def chunk_reviews(texts: Sequence[str], encoder: TextEncoder, chunking: Chunking) -> ChunkedReviews:
    passages: list[str] = []
    chunks_of: list[list[int]] = []
    for text in texts:
        chunks = chunk_text(text, chunking.chunk_tokens, chunking.max_chunks)
        chunks_of.append(list(range(len(passages), len(passages) + len(chunks))))
        passages += [chunk.text for chunk in chunks]
    return ChunkedReviews(encoder.token_ids(passages, kind="query"), chunks_of)


class LayerInputs:
    """The frozen lower layers' output for every chunk, flat per token in float16."""

    def __init__(self, states: torch.Tensor, lengths: npt.NDArray[np.int64]) -> None:
        self.states = states
        self.lengths = lengths
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    def batch(self, chunk_ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden states (chunks, width, dim) in float32, attention mask (chunks, width))."""
        widths = [int(self.lengths[c]) for c in chunk_ids]
        width = max(widths)
        hidden = torch.zeros((len(chunk_ids), width, self.states.shape[1]))
        mask = torch.zeros((len(chunk_ids), width), dtype=torch.long)
        for row, (chunk, size) in enumerate(zip(chunk_ids, widths, strict=True)):
            start = int(self.offsets[chunk])
            hidden[row, :size] = self.states[start : start + size].float()
            mask[row, :size] = 1
        return hidden, mask


def layer_inputs(
    encoder: TextEncoder, chunks: ChunkedReviews, first_layer: int, batch_size: int
) -> LayerInputs:
    """Run the frozen encoder once over every chunk and keep the first tuned layer's input,
    batched and padded as ``TextEncoder.encode`` batches (``padded_batches``)."""
    model = encoder.loaded_model()
    lengths = chunks.lengths
    states = torch.zeros((int(lengths.sum()), int(model.config.hidden_size)), dtype=torch.float16)
    inputs = LayerInputs(states, lengths)
    device = next(model.parameters()).device
    started = time.perf_counter()
    with torch.inference_mode():
        for batch, input_ids, mask in padded_batches(
            chunks.token_ids, encoder.pad_token_id, batch_size, side="right"
        ):
            output = model(
                input_ids=input_ids.to(device),
                attention_mask=mask.to(device),
                output_hidden_states=True,
            )
            hidden = output.hidden_states[first_layer].to("cpu", torch.float16)
            for row, chunk in enumerate(batch):
                start, size = int(inputs.offsets[chunk]), int(lengths[chunk])
                states[start : start + size] = hidden[row, :size]
    logger.info(
        "cached layer %d inputs of %d chunks (%d tokens) in %.0f s",
        first_layer,
        len(lengths),
        len(states),
        time.perf_counter() - started,
    )
    return inputs


class TunedLayers(LayerStack):
    """Trainable float32 copies of the encoder's top layers."""

    def __init__(self, model: torch.nn.Module, count: int) -> None:
        layers = transformer_layers(model)
        if not 1 <= count <= len(layers):
            raise ValueError(f"can fine-tune 1 to {len(layers)} layers, not {count}")
        first = len(layers) - count
        super().__init__(copy.deepcopy(layer).float() for layer in layers[first:])
        self.first = first
        # The names the same parameters have in the full model, for replace_weights.
        self.model_prefix = next(
            name.rsplit(f".{first}.", 1)[0]
            for name, parameter in model.named_parameters()
            if parameter is next(layers[first].parameters())
        )

    def model_weights(self) -> dict[str, npt.NDArray[np.float16]]:
        """The trained parameters under their names in the full model, as float16."""
        weights: dict[str, npt.NDArray[np.float16]] = {}
        for index, layer in enumerate(self.layers):
            for name, parameter in layer.named_parameters():
                full = f"{self.model_prefix}.{self.first + index}.{name}"
                weights[full] = parameter.detach().to("cpu", torch.float16).numpy()
        return weights


class GroupHeads(torch.nn.Module):
    """One logistic regression per language group on the pooled review vector."""

    def __init__(self, groups: Sequence[str], dim: int) -> None:
        super().__init__()
        self.names = sorted(set(groups))
        self.linear = torch.nn.ModuleDict({name: torch.nn.Linear(dim, 1) for name in self.names})

    def forward(self, vectors: torch.Tensor, groups: Sequence[str]) -> torch.Tensor:
        logits = torch.zeros(len(groups), device=vectors.device)
        for name in self.names:
            rows = [i for i, group in enumerate(groups) if group == name]
            if rows:
                logits[rows] = self.linear[name](vectors[rows] * LOGIT_SCALE).squeeze(-1)
        return logits


def review_batches(
    reviews: Sequence[int],
    chunks: ChunkedReviews,
    options: FinetuneOptions,
    rng: np.random.Generator | None = None,
) -> list[list[int]]:
    """Batches of whole reviews of similar chunk width (little padding), shuffled if ``rng``."""
    lengths = chunks.lengths
    widest = {r: int(max(lengths[c] for c in chunks.chunks_of[r])) for r in reviews}
    batches: list[list[int]] = []
    current: list[int] = []
    count = 0
    for review in sorted(reviews, key=lambda r: -widest[r]):
        size = len(chunks.chunks_of[review])
        width = widest[current[0]] if current else widest[review]
        if current and (
            count + size > options.batch_chunks or (count + size) * width > options.batch_tokens
        ):
            batches.append(current)
            current, count = [], 0
        current.append(review)
        count += size
    if current:
        batches.append(current)
    if rng is not None:
        rng.shuffle(batches)
    return batches


@dataclass(frozen=True)
class TuningRows:
    """Every review to vectorise, and which of them train the layers and choose the epoch."""

    texts: Sequence[str]
    groups: Sequence[str]
    positive: npt.NDArray[np.bool_]
    train: Sequence[int]
    dev: Sequence[int]


@dataclass
class FinetuneResult:
    vectors: FloatArray
    """One pooled unit vector per review given, from the kept epoch's layers."""
    weights: dict[str, npt.NDArray[np.float16]]
    record: dict[str, Any]


class EncoderTuning:
    """One fine-tuning run: the cached lower-layer outputs, the trained layers and heads."""

    def __init__(
        self, encoder: TextEncoder, rows: TuningRows, chunking: Chunking, options: FinetuneOptions
    ) -> None:
        torch.manual_seed(options.seed)
        model = encoder.loaded_model()
        self.rows = rows
        self.options = options
        self.dim = int(model.config.hidden_size)
        self.tuned = TunedLayers(model, options.layers)
        self.chunks = chunk_reviews(rows.texts, encoder, chunking)
        self.inputs = layer_inputs(encoder, self.chunks, self.tuned.first, batch_size=32)
        # Train where the encoder runs (CUDA when present); the cached inputs stay on the CPU.
        self.device = next(model.parameters()).device
        self.tuned.to(self.device)
        self.heads = GroupHeads(rows.groups, self.dim).to(self.device)
        self.labels = torch.from_numpy(rows.positive.astype(np.float32)).to(self.device)

    def forward(self, batch: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, pooled unit vectors) of a batch of whole reviews."""
        chunk_ids = [c for review in batch for c in self.chunks.chunks_of[review]]
        hidden, mask = self.inputs.batch(chunk_ids)
        chunk_vectors = self.tuned(hidden.to(self.device), mask.to(self.device))
        reviews, position = [], 0
        for review in batch:
            count = len(self.chunks.chunks_of[review])
            reviews.append(chunk_vectors[position : position + count].mean(0))
            position += count
        vectors = torch.nn.functional.normalize(torch.stack(reviews), dim=-1)
        return self.heads(vectors, [self.rows.groups[r] for r in batch]), vectors

    def score(self, rows: Sequence[int]) -> tuple[FloatArray, FloatArray]:
        """(logits, vectors) with one row per review of ``rows.texts``; only ``rows`` filled."""
        self.tuned.eval()
        logits = np.zeros(len(self.rows.texts), dtype=np.float32)
        vectors = np.zeros((len(self.rows.texts), self.dim), dtype=np.float32)
        wide = FinetuneOptions(batch_chunks=64, batch_tokens=2 * self.options.batch_tokens)
        with torch.inference_mode():
            for batch in review_batches(rows, self.chunks, wide):
                batch_logits, batch_vectors = self.forward(batch)
                logits[batch] = batch_logits.cpu().numpy()
                vectors[batch] = batch_vectors.cpu().numpy()
        self.tuned.train()
        return logits, vectors

    def dev_accuracy(self) -> dict[str, float]:
        logits, _ = self.score(self.rows.dev)
        result = {}
        for name in self.heads.names:
            rows = [r for r in self.rows.dev if self.rows.groups[r] == name]
            correct = (logits[rows] >= 0) == self.rows.positive[rows]
            result[name] = round(float(correct.mean()), 4) if rows else 0.0
        return result

    def train(self) -> tuple[int, bool, list[dict[str, Any]]]:
        """Train every epoch, keep the layers of the best candidate on dev; (kept epoch, whether
        its averaged weights were kept, per epoch)."""
        options = self.options
        rng = np.random.default_rng(options.seed)
        steps_per_epoch = len(review_batches(self.rows.train, self.chunks, options))
        schedule = LinearSchedule(steps_per_epoch * options.epochs, options.warmup_share)
        optimiser = torch.optim.AdamW(
            [
                {
                    "params": self.tuned.parameters(),
                    "lr": options.learning_rate,
                    "weight_decay": options.weight_decay,
                },
                {
                    "params": self.heads.parameters(),
                    "lr": options.head_learning_rate,
                    "weight_decay": 0.0,
                },
            ]
        )
        base_rates = [group["lr"] for group in optimiser.param_groups]
        parameters = [*self.tuned.parameters(), *self.heads.parameters()]
        epochs: list[dict[str, Any]] = []
        best: tuple[float, int, bool, dict[str, torch.Tensor]] | None = None
        average = WeightAverage(self.tuned, self.heads, options.average_decay)
        step = 0
        self.tuned.train()
        for epoch in range(1, options.epochs + 1):
            started = time.perf_counter()
            losses: list[float] = []
            for batch in review_batches(self.rows.train, self.chunks, options, rng):
                for group, rate in zip(optimiser.param_groups, base_rates, strict=True):
                    group["lr"] = rate * schedule.factor(step)
                logits, _ = self.forward(batch)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, self.labels[batch]
                )
                optimiser.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                torch.nn.utils.clip_grad_norm_(parameters, 1.0)
                optimiser.step()
                average.update(step)
                losses.append(float(loss.detach()))
                step += 1
                if len(losses) % 100 == 0:
                    logger.info(
                        "epoch %d step %d/%d loss %.3f",
                        epoch,
                        len(losses),
                        steps_per_epoch,
                        float(np.mean(losses[-100:])),
                    )
            train_seconds = time.perf_counter() - started
            # Each epoch's own weights, and with averaging their moving average, are candidates.
            candidates = {False: self.dev_accuracy()}
            if average.enabled:
                with average.swapped_in():
                    candidates[True] = self.dev_accuracy()
            epochs.append(
                {
                    "epoch": epoch,
                    "train_loss": round(float(np.mean(losses)), 4),
                    "dev_accuracy": candidates[False],
                    **({"averaged_dev_accuracy": candidates[True]} if average.enabled else {}),
                    "train_seconds": round(train_seconds, 1),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
            logger.info("epoch %d: %s", epoch, epochs[-1])
            for averaged, dev in candidates.items():
                if best is None or sum(dev.values()) >= best[0]:
                    with average.swapped_in(averaged):
                        state = {k: v.detach().clone() for k, v in self.tuned.state_dict().items()}
                    best = (sum(dev.values()), epoch, averaged, state)
        if best is None:
            raise ValueError("fine-tuning needs at least one epoch")
        self.tuned.load_state_dict(best[3])
        return best[1], best[2], epochs


class WeightAverage:
    """An exponential moving average of the tuned layers' and heads' parameters.

    The decay ramps up as (1 + step) / (10 + step) until it reaches ``decay``, so the first
    steps, far from where training ends, do not weigh on the average for long."""

    def __init__(self, tuned: torch.nn.Module, heads: torch.nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the average's decay must be in [0, 1), not {decay}")
        self.decay = decay
        self._parameters = [*tuned.parameters(), *heads.parameters()]
        self._average = [p.detach().clone() for p in self._parameters] if decay else []

    @property
    def enabled(self) -> bool:
        return bool(self._average)

    def update(self, step: int) -> None:
        if not self._average:
            return
        decay = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            current = [p.detach() for p in self._parameters]
            torch._foreach_mul_(self._average, decay)
            torch._foreach_add_(self._average, current, alpha=1.0 - decay)

    @contextlib.contextmanager
    def swapped_in(self, active: bool = True) -> Iterator[None]:
        """The averaged weights in place of the trained ones, inside the block."""
        if not (active and self._average):
            yield
            return
        with torch.no_grad():
            trained = [p.detach().clone() for p in self._parameters]
            for parameter, average in zip(self._parameters, self._average, strict=True):
                parameter.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for parameter, value in zip(self._parameters, trained, strict=True):
                    parameter.copy_(value)


@dataclass(frozen=True)
class LinearSchedule:
    """Learning-rate factor: linear warm-up over a share of the steps, then linear decay."""

    total_steps: int
    warmup_share: float

    def factor(self, step: int) -> float:
        warmup = max(1, int(self.warmup_share * self.total_steps))
        if step < warmup:
            return step / warmup
        return max(0.0, (self.total_steps - step) / max(self.total_steps - warmup, 1))


def finetune_encoder(
    encoder: TextEncoder, rows: TuningRows, chunking: Chunking, options: FinetuneOptions
) -> FinetuneResult:
    """Train the top layers on ``rows.train``, keep the epoch best on ``rows.dev``, and return
    every review's vector (trained on or not) from the kept layers."""
    if options.epochs < 1:
        raise ValueError("fine-tuning needs at least one epoch")
    started = time.perf_counter()
    tuning = EncoderTuning(encoder, rows, chunking, options)
    cache_seconds = time.perf_counter() - started
    kept_epoch, kept_average, epochs = tuning.train()
    _, vectors = tuning.score(range(len(rows.texts)))
    record = {
        "layers": options.layers,
        "first_layer": tuning.tuned.first,
        "epochs": options.epochs,
        "kept_epoch": kept_epoch,
        "average_decay": options.average_decay,
        "kept_weights": "averaged" if kept_average else "epoch",
        "learning_rate": options.learning_rate,
        "head_learning_rate": options.head_learning_rate,
        "weight_decay": options.weight_decay,
        "warmup_share": options.warmup_share,
        "batch": {"chunks": options.batch_chunks, "tokens": options.batch_tokens},
        "seed": options.seed,
        "trained_parameters": sum(p.numel() for p in tuning.tuned.parameters()),
        "train_rows": len(rows.train),
        "dev_rows": len(rows.dev),
        "per_epoch": epochs,
        "cache_seconds": round(cache_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return FinetuneResult(vectors=vectors, weights=tuning.tuned.model_weights(), record=record)
