"""Model tests load the real packaged weights, offline.

The cache is the normal one (``$SHOPSTREAM_CACHE`` or the user cache directory), not a temporary
directory, so each default is converted once per machine rather than once per test run.
"""

from __future__ import annotations

import os

# Set before transformers or huggingface_hub is imported, so any attempt to reach the Hub fails
# loudly instead of passing on a machine that happens to have network access.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from collections.abc import Iterator

import pytest

from shopstream.models import (
    DEFAULT_ENCODER,
    DEFAULT_GENERATOR,
    ENGLISH_ENCODER,
    TextEncoder,
    TextGenerator,
)


@pytest.fixture(scope="session")
def e5_encoder() -> Iterator[TextEncoder]:
    encoder = TextEncoder(DEFAULT_ENCODER)
    encoder.load()
    yield encoder
    encoder.unload()


@pytest.fixture(scope="session")
def minilm_encoder() -> Iterator[TextEncoder]:
    encoder = TextEncoder(ENGLISH_ENCODER)
    encoder.load()
    yield encoder
    encoder.unload()


@pytest.fixture(scope="session")
def converted_generator() -> TextGenerator:
    """A generator whose first load has happened, converting the GGUF if the cache lacked it."""
    generator = TextGenerator(DEFAULT_GENERATOR)
    generator.load()
    generator.unload()
    return generator
