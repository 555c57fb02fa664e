"""The model layer's torch-free face: model names, the shared runtime settings, and the
sentiment scoring types that keep ``model`` and ``backends`` from importing each other."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from shopstream.models import DEFAULT_ENCODER, DEFAULT_GENERATOR, ENGLISH_ENCODER
from shopstream.models.settings import ModelPlacementSettings, ModelRuntimeSettings
from shopstream_describer.config import DescriberSettings, GeneratorConfig
from shopstream_recommender.config import EmbedderConfig, RecommenderSettings
from shopstream_responder.config import EncoderConfig, RephraseConfig, ResponderSettings
from shopstream_sentiment.config import SentimentModelConfig, SentimentSettings
from shopstream_sentiment.scoring import ScoringUnit, unique_passages

pytestmark = pytest.mark.unit

SENTIMENT_SOURCE = Path(__file__).parents[2] / "services/sentiment/src/shopstream_sentiment"


def test_settings_and_model_names_import_without_torch() -> None:
    code = (
        "import sys, shopstream.models, shopstream_sentiment.config, "
        "shopstream_describer.config, shopstream_responder.config, "
        "shopstream_recommender.config, shopstream_sentiment.scoring; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_every_service_defaults_to_the_registry_names() -> None:
    assert SentimentModelConfig().encoder == DEFAULT_ENCODER
    assert EncoderConfig().encoder == DEFAULT_ENCODER
    assert EncoderConfig().english_encoder == ENGLISH_ENCODER
    assert EmbedderConfig().encoder == DEFAULT_ENCODER
    assert GeneratorConfig().generator == DEFAULT_GENERATOR
    assert RephraseConfig().generator == DEFAULT_GENERATOR


@pytest.mark.parametrize(
    ("config", "runtime", "batch_size"),
    [
        (SentimentModelConfig, ModelRuntimeSettings, 32),
        (EncoderConfig, ModelRuntimeSettings, 32),
        (GeneratorConfig, ModelRuntimeSettings, 32),
        (RephraseConfig, ModelPlacementSettings, 8),
        (EmbedderConfig, ModelPlacementSettings, 64),
    ],
)
def test_model_settings_share_device_threads_and_batch_size(
    config: type[ModelPlacementSettings], runtime: type[ModelPlacementSettings], batch_size: int
) -> None:
    assert issubclass(config, runtime)
    defaults = config()
    assert defaults.device == "auto"
    assert defaults.batch_size == batch_size
    with pytest.raises(ValidationError):
        config(batch_size=0)
    threaded = issubclass(config, ModelRuntimeSettings)
    assert defaults.runtime_options() == {"device": "auto", "threads": None}
    if threaded:
        assert config(threads=3).runtime_options() == {"device": "auto", "threads": 3}
        with pytest.raises(ValidationError):
            config(threads=0)
    else:
        with pytest.raises(ValidationError):
            config(threads=3)  # the thread pool belongs to the process's main model


@pytest.mark.parametrize(
    ("settings", "variable", "field"),
    [
        (SentimentSettings, "SENTIMENT_MODEL__THREADS", "threads"),
        (SentimentSettings, "SENTIMENT_MODEL__BATCH_SIZE", "batch_size"),
        (DescriberSettings, "DESCRIBER_MODEL__THREADS", "threads"),
        (ResponderSettings, "RESPONDER_MODEL__BATCH_SIZE", "batch_size"),
        (ResponderSettings, "RESPONDER_REPHRASE__BATCH_SIZE", "batch_size"),
        (RecommenderSettings, "RECOMMENDER_EMBEDDER__BATCH_SIZE", "batch_size"),
    ],
)
def test_the_environment_variables_keep_their_names(
    monkeypatch: pytest.MonkeyPatch, settings: type, variable: str, field: str
) -> None:
    monkeypatch.setenv(variable, "5")
    section = variable.split("__", maxsplit=1)[0].split("_", 1)[1].lower()
    assert getattr(getattr(settings(), section), field) == 5


def test_units_share_their_passages_once() -> None:
    units = [
        ScoringUnit(text="a. b.", passages=("a.", "b."), group="en"),
        ScoringUnit(text="b.", passages=("b.",), group="en"),
    ]
    assert unique_passages(units) == (["a.", "b."], [[0, 1], [1]])


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_sentiment_backends_do_not_import_the_model() -> None:
    """``model`` picks a backend from ``backends``; both take the shared types from
    ``scoring``, so ``backends`` never imports ``model``."""
    assert "shopstream_sentiment.model" not in imported_modules(SENTIMENT_SOURCE / "backends.py")
    assert "shopstream_sentiment.backends" not in imported_modules(SENTIMENT_SOURCE / "scoring.py")
