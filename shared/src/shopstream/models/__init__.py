"""shopstream's model layer: a registry of offline-loadable models, encoders and generators.

Typical use in a service's ``model.py``::

    encoder = TextEncoder(settings.model_id, device=settings.device)
    report = encoder.load()          # report.load_seconds -> model_load_seconds metric
    vectors = encoder.encode(texts, kind="passage")

The model names and settings are imported at once; everything else on first use, so a
service's settings can name ``shopstream.models.names.DEFAULT_ENCODER`` without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from shopstream.models.names import (
    DEFAULT_ENCODER,
    DEFAULT_GENERATOR,
    ENGLISH_ENCODER,
    LARGE_GENERATOR,
    SMALL_GENERATOR,
)
from shopstream.models.settings import ModelPlacementSettings, ModelRuntimeSettings

if TYPE_CHECKING:
    from shopstream.models.cache import CACHE_ENV, METADATA_FILE, ConversionRecord, cache_root
    from shopstream.models.classifier import TextClassifier
    from shopstream.models.device import configure_threads, inference_dtype, resolve_device
    from shopstream.models.embeddings import LayerStack, TextEncoder, TextKind, transformer_layers
    from shopstream.models.generator import ChatMessage, Prompt, TextGenerator
    from shopstream.models.loading import LoadReport
    from shopstream.models.pretrained import Pretrained, load_pretrained
    from shopstream.models.registry import (
        BUILTIN_MODELS,
        ModelSpec,
        ModelTask,
        ResolvedModel,
        SourceKind,
        resolve,
    )

# Public name -> the module that defines it; these modules import torch or transformers.
_LAZY = {
    "CACHE_ENV": "cache",
    "METADATA_FILE": "cache",
    "ConversionRecord": "cache",
    "cache_root": "cache",
    "TextClassifier": "classifier",
    "configure_threads": "device",
    "inference_dtype": "device",
    "resolve_device": "device",
    "LayerStack": "embeddings",
    "TextEncoder": "embeddings",
    "TextKind": "embeddings",
    "transformer_layers": "embeddings",
    "ChatMessage": "generator",
    "Prompt": "generator",
    "TextGenerator": "generator",
    "LoadReport": "loading",
    "Pretrained": "pretrained",
    "load_pretrained": "pretrained",
    "BUILTIN_MODELS": "registry",
    "ModelSpec": "registry",
    "ModelTask": "registry",
    "ResolvedModel": "registry",
    "SourceKind": "registry",
    "resolve": "registry",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        # Also how ``from shopstream.models import lora`` falls through to the submodule.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "BUILTIN_MODELS",
    "CACHE_ENV",
    "DEFAULT_ENCODER",
    "DEFAULT_GENERATOR",
    "ENGLISH_ENCODER",
    "LARGE_GENERATOR",
    "METADATA_FILE",
    "SMALL_GENERATOR",
    "ChatMessage",
    "ConversionRecord",
    "LayerStack",
    "LoadReport",
    "ModelPlacementSettings",
    "ModelRuntimeSettings",
    "ModelSpec",
    "ModelTask",
    "Pretrained",
    "Prompt",
    "ResolvedModel",
    "SourceKind",
    "TextClassifier",
    "TextEncoder",
    "TextGenerator",
    "TextKind",
    "cache_root",
    "configure_threads",
    "inference_dtype",
    "load_pretrained",
    "resolve",
    "resolve_device",
    "transformer_layers",
]
