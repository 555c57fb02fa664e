"""The one Hugging Face load sequence: a tokenizer and a model, ready for inference.

Encoders, generators, classifiers and the describer's tuning all load the same way: resolve the
name in the registry (a packaged default, a local directory or a Hub id), choose the device and
the dtype, set torch's threads, load tokenizer and weights onto the device in eval mode, and
note the revision that was really loaded for lineage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from shopstream.models.device import configure_threads, inference_dtype, resolve_device
from shopstream.models.loading import (
    LoadReport,
    finish_load,
    hub_options,
    loaded_revision,
    prepare_transformers,
    release_memory,
)
from shopstream.models.registry import ResolvedModel, resolve

logger = logging.getLogger("shopstream.models")


class AutoModelClass(Protocol):
    """``AutoModel``, ``AutoModelForCausalLM``, ``AutoModelForSequenceClassification``, ..."""

    def from_pretrained(self, location: str, /, *inputs: Any, **options: Any) -> Any: ...  # noqa: ANN401


DtypeChoice = Callable[[torch.device], torch.dtype]
"""The dtype to load in, given the device (``inference_dtype`` unless a caller needs another)."""

ModelOptions = Callable[[PretrainedConfig, ResolvedModel], Mapping[str, Any]]
"""Extra ``from_pretrained`` arguments that depend on the checkpoint's config."""


@dataclass(frozen=True)
class Pretrained:
    """A loaded tokenizer and model, and where and how they were loaded."""

    resolved: ResolvedModel
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    config: PretrainedConfig
    device: torch.device
    dtype: torch.dtype
    revision: str
    """The revision loaded: the Hub commit when known, else the registry's revision."""
    started: float
    """``time.perf_counter()`` when the load began, for ``report``."""

    def report(self, role: str, *, revision: str | None = None) -> LoadReport:
        """Log the load as ``role`` and report it; ``revision`` overrides the loaded one (a
        merged adapter adds its digest)."""
        return finish_load(
            role,
            self.resolved,
            revision=self.revision if revision is None else revision,
            device=self.device,
            dtype=self.dtype,
            started=self.started,
        )


def load_pretrained(
    model_class: AutoModelClass,
    name: str,
    *,
    revision: str | None = None,
    device: str = "auto",
    dtype: DtypeChoice = inference_dtype,
    threads: int | None = None,
    model_options: ModelOptions | None = None,
) -> Pretrained:
    """Load ``name`` (registry name, local directory or Hub id) as ``model_class``.

    ``revision`` applies to Hub ids only. ``threads`` sets torch's intra-op threads first
    (``None`` leaves them). With ``model_options``, the checkpoint's config is read first and
    passed to the model with the options it yields.
    """
    started = time.perf_counter()
    configure_threads(threads)
    prepare_transformers()
    resolved = resolve(name, revision=revision)
    chosen_device = resolve_device(device)
    chosen_dtype = dtype(chosen_device)
    options = hub_options(resolved)
    tokenizer = AutoTokenizer.from_pretrained(resolved.location, **options)
    extra: dict[str, Any] = {}
    if model_options is not None:
        config = AutoConfig.from_pretrained(resolved.location, **options)
        extra = {"config": config, **model_options(config, resolved)}
    model: PreTrainedModel = model_class.from_pretrained(
        resolved.location, dtype=chosen_dtype, device_map=chosen_device, **options, **extra
    )
    # from_pretrained leaves a model in eval mode today; say so rather than rely on it.
    model.eval()  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
    return Pretrained(
        resolved=resolved,
        tokenizer=tokenizer,
        model=model,
        config=model.config,
        device=chosen_device,
        dtype=chosen_dtype,
        revision=loaded_revision(resolved, model.config),
        started=started,
    )


class PretrainedHandle:
    """A model loaded once through ``load_pretrained`` and unloaded on demand: the lifecycle
    that ``TextEncoder``, ``TextGenerator`` and ``TextClassifier`` share.

    A subclass names its ``role`` (for logs) and its ``auto_class``, and may override
    ``_dtype``, ``_model_options`` and ``_loaded`` (what it derives from the loaded model; it
    returns the revision to stamp in lineage).
    """

    role: str
    """What the model is, in logs and errors ("encoder", "generator", ...)."""
    auto_class: ClassVar[AutoModelClass]

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        device: str = "auto",
        threads: int | None = None,
    ) -> None:
        self.model_id = model
        self.revision = revision or ""
        self.load_seconds = 0.0
        self.converted = False
        self.report: LoadReport | None = None
        self._requested_revision = revision
        self._device_name = device
        self._threads = threads
        self._device: torch.device | None = None
        self._model: PreTrainedModel | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    def _dtype(self, device: torch.device) -> torch.dtype:
        return inference_dtype(device)

    def _model_options(self) -> ModelOptions | None:
        return None

    def _loaded(self, loaded: Pretrained) -> str:
        return loaded.revision

    def load(self) -> LoadReport:
        if self.report is not None and self.is_loaded:
            return self.report
        loaded = load_pretrained(
            self.auto_class,
            self.model_id,
            revision=self._requested_revision,
            device=self._device_name,
            dtype=self._dtype,
            threads=self._threads,
            model_options=self._model_options(),
        )
        self._model, self._tokenizer, self._device = loaded.model, loaded.tokenizer, loaded.device
        self.revision = self._loaded(loaded)
        self.converted = loaded.resolved.converted
        self.report = loaded.report(self.role, revision=self.revision)
        self.load_seconds = self.report.load_seconds
        return self.report

    def _parts(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, torch.device]:
        """Model, tokenizer and device, or an error naming the model when it is not loaded."""
        if self._model is None or self._tokenizer is None or self._device is None:
            raise RuntimeError(f"{self.role} {self.model_id} is not loaded; call load() first")
        return self._model, self._tokenizer, self._device

    def loaded_model(self) -> PreTrainedModel:
        """The loaded model itself, for training code that runs parts of it."""
        return self._parts()[0]

    def replace_weights(self, tensors: Mapping[str, npt.NDArray[Any]]) -> None:
        """Overwrite named parameters of the loaded model in place (e.g. fine-tuned layers
        shipped with a head), cast to the model's dtype and device. The architecture, and so
        the inference cost, stay as they are; an unknown name or a wrong shape is an error."""
        model, _, _ = self._parts()
        parameters = dict(model.named_parameters())
        for name, value in tensors.items():
            target = parameters.get(name)
            if target is None:
                raise ValueError(f"{self.role} {self.model_id} has no parameter {name!r}")
            if tuple(target.shape) != tuple(value.shape):
                raise ValueError(
                    f"{self.role} {self.model_id}: parameter {name!r} has shape "
                    f"{tuple(target.shape)}, the replacement {tuple(value.shape)}"
                )
            with torch.no_grad():
                target.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(target.dtype))

    def unload(self) -> None:
        device = self._device
        self._model = None
        self._tokenizer = None
        self._device = None
        release_memory(device)
        logger.info("unloaded %s %s", self.role, self.model_id)
