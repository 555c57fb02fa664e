"""The on-disk cache of converted models: where it lives, what it records, converting once."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import platformdirs

logger = logging.getLogger("shopstream.models")

CACHE_ENV = "SHOPSTREAM_CACHE"
METADATA_FILE = "shopstream-model.json"


def cache_root() -> Path:
    """``$SHOPSTREAM_CACHE`` when set, else the user's cache directory for shopstream."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_cache_dir("shopstream"))


def model_cache_dir(name: str, revision: str) -> Path:
    return cache_root() / "models" / name / revision


@dataclass(frozen=True)
class ConversionRecord:
    """What ``shopstream-model.json`` says about a converted directory."""

    name: str
    source: str
    revision: str
    format_version: int
    conversion_seconds: float
    converted_at: str


def read_record(directory: Path) -> ConversionRecord | None:
    try:
        raw = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
        return ConversionRecord(**raw)
    except (OSError, ValueError, TypeError):
        return None


def _write_record(directory: Path, record: ConversionRecord) -> None:
    text = json.dumps(asdict(record), indent=2, ensure_ascii=False) + "\n"
    (directory / METADATA_FILE).write_text(text, encoding="utf-8")


def _make_readable(directory: Path) -> None:
    """Open the converted files to every user: mkdtemp and safetensors create them owner-only,
    and a cache on a shared volume is written by one user and read by services running as others.
    """
    directory.chmod(0o755)
    for item in directory.rglob("*"):
        item.chmod(0o755 if item.is_dir() else 0o644)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise conversions across processes, so replicas starting together convert once."""
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_once(
    directory: Path,
    convert: Callable[[Path], None],
    *,
    name: str,
    source: str,
    revision: str,
    format_version: int,
) -> tuple[ConversionRecord, bool]:
    """Return the record of ``directory``, running ``convert`` first if it is missing or stale.

    The second item is True when this call did the conversion. ``convert`` writes into a staging
    directory that is renamed into place only when complete, so an interrupted conversion never
    leaves a half-written model that a later start would load.
    """
    existing = read_record(directory)
    if existing is not None and existing.format_version == format_version:
        return existing, False
    directory.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(directory.parent / f".{directory.name}.lock"):
        existing = read_record(directory)
        if existing is not None and existing.format_version == format_version:
            return existing, False
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            logger.info("converting %s from %s into %s (first use only)", name, source, directory)
            started = time.perf_counter()
            convert(staging)
            record = ConversionRecord(
                name=name,
                source=source,
                revision=revision,
                format_version=format_version,
                conversion_seconds=round(time.perf_counter() - started, 3),
                converted_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            _write_record(staging, record)
            _make_readable(staging)
            if directory.exists():
                shutil.rmtree(directory)
            staging.rename(directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    logger.info("converted %s in %.1f s", name, record.conversion_seconds)
    return record, True
