"""shopstream's model layer: a registry of offline-loadable models, encoders and generators.

Typical use in a service's ``model.py``::

    encoder = TextEncoder(settings.model_id, device=settings.device)
    report = encoder.load()          # report.load_seconds -> model_load_seconds metric
    vectors = encoder.encode(texts, kind="passage")
"""

from shopstream.models.cache import CACHE_ENV, METADATA_FILE, ConversionRecord, cache_root
from shopstream.models.device import configure_threads, inference_dtype, resolve_device
from shopstream.models.embeddings import TextEncoder, TextKind
from shopstream.models.generator import ChatMessage, Prompt, TextGenerator
from shopstream.models.loading import LoadReport
from shopstream.models.registry import (
    BUILTIN_MODELS,
    DEFAULT_ENCODER,
    DEFAULT_GENERATOR,
    ENGLISH_ENCODER,
    ModelSpec,
    ModelTask,
    ResolvedModel,
    SourceKind,
    resolve,
)

__all__ = [
    "BUILTIN_MODELS",
    "CACHE_ENV",
    "DEFAULT_ENCODER",
    "DEFAULT_GENERATOR",
    "ENGLISH_ENCODER",
    "METADATA_FILE",
    "ChatMessage",
    "ConversionRecord",
    "LoadReport",
    "ModelSpec",
    "ModelTask",
    "Prompt",
    "ResolvedModel",
    "SourceKind",
    "TextEncoder",
    "TextGenerator",
    "TextKind",
    "cache_root",
    "configure_threads",
    "inference_dtype",
    "resolve",
    "resolve_device",
]
