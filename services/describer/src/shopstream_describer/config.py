"""Settings of the describer service (env prefix ``DESCRIBER_``, nested fields joined by ``__``).

Examples: ``DESCRIBER_MODEL__GENERATOR=qwen2.5-coder-1.5b-instruct`` (the optional larger
model), ``DESCRIBER_MODEL__GENERATOR=Qwen/Qwen2.5-7B-Instruct`` on a GPU pod with Hub access,
``DESCRIBER_MODEL__GENERATOR=none`` (composer only),
``DESCRIBER_TENANT_LEXICONS='{"acme": "/etc/shopstream/acme-lexicon.json"}'``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shopstream.models.names import DEFAULT_GENERATOR
from shopstream.models.settings import ModelRuntimeSettings
from shopstream.settings import ServiceSettings
from shopstream_describer.pipeline import PipelineOptions
from shopstream_describer.serving import OpenAIServerConfig

__all__ = [
    "DEFAULT_ADAPTER",
    "DEFAULT_GENERATOR",
    "DescriberSettings",
    "GeneratorConfig",
    "packaged_adapter",
]

DEFAULT_ADAPTER = "shop-copy-0.5b"
"""The packaged adapter (``adapters/<name>``), tuned by ``shopstream describer tune`` on the
development copy for `DEFAULT_GENERATOR`."""


def packaged_adapter(name: str = DEFAULT_ADAPTER) -> Path:
    return Path(str(resources.files("shopstream_describer").joinpath("adapters", name)))


class GeneratorConfig(ModelRuntimeSettings):
    """The text generator and how it decodes; ``device`` and ``threads`` from
    ``ModelRuntimeSettings``."""

    generator: str | None = DEFAULT_GENERATOR
    """Registry name, local directory or Hugging Face id of a causal LM; ``none`` turns
    generation off and every text is composed from the attributes. (An empty variable cannot:
    the settings ignore empty variables, so it would mean the default.)"""
    revision: str | None = None
    """Hub branch, tag or commit of ``generator``."""

    @field_validator("generator", "adapter", mode="before")
    @classmethod
    def _none_means_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
            return None
        return value

    adapter: str | None = "default"
    """LoRA adapter merged into the generator's weights once at load (so it costs nothing per
    token): a directory written by ``shopstream describer tune``, ``default`` (the packaged
    adapter, used only when ``generator`` is the default Qwen 0.5B it was trained on), or
    ``none``. Its digest becomes part of the model revision in lineage."""

    def adapter_path(self) -> Path | None:
        """The adapter directory to merge, if any."""
        if self.adapter is None or self.backend != "transformers":
            return None
        if self.adapter == "default":
            return packaged_adapter() if self.generator == DEFAULT_GENERATOR else None
        return Path(self.adapter)

    languages: list[str] = Field(default_factory=lambda: ["en", "zh"])
    """Languages the generator writes; other locales are composed. Set ``["en"]`` for an
    English-only model such as ``smollm2-135m-instruct``."""
    batch_size: int = Field(default=32, ge=1, le=512)
    """Prompts per forward pass; prompts are batched by template, then by length. On 2 CPU
    cores with the prompt start shared, a Chinese batch of 32 products wrote 0.84 items/s
    against 0.51 for batches of 8 (README, describer bench); the Kafka batch
    (``BATCH__MAX_RECORDS``) bounds it in a service."""
    share_prompt_prefix: bool = True
    """Run the prompt start a batch shares (system turn, instructions) once and reuse its
    keys and values for every row (``shopstream.models.prefix_cache``; transformers
    backend)."""
    max_attempts: int = Field(default=2, ge=1, le=10)
    """Generations per text before repair, then the composer, take over."""
    description_tokens: int = Field(default=128, ge=8, le=2_048)
    """New tokens per description: about 130 Chinese characters or 70 English words with
    Qwen's tokenizer; the prompts ask for less, and a cut-off last sentence is dropped."""
    copy_tokens: int = Field(default=64, ge=8, le=1_024)
    first_attempt_sampling: bool = False
    """Greedy first attempt (reproducible); retries always sample with a fixed seed."""
    temperature: float = Field(default=0.8, gt=0.0, le=2.0)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    repetition_penalty: float = Field(default=1.1, ge=1.0, le=2.0)
    no_repeat_ngram_size: int = Field(default=4, ge=0, le=10)
    """Within the completion only; the product's facts in the prompt may be repeated."""
    avoid_unsupported_terms: bool = True
    """Steer decoding away from claim terms the product's facts do not support and from the
    compliance lexicon's terms (transformers backend); the gate checks the text either way."""
    seed: int = 7
    backend: Literal["transformers", "openai"] = "transformers"
    """``transformers`` runs ``generator`` in this process; ``openai`` sends the prompts to the
    OpenAI-compatible server of ``server`` (vLLM, TGI, llama.cpp, Ollama) instead."""
    server: OpenAIServerConfig = OpenAIServerConfig()
    """The serving engine of the ``openai`` backend, e.g.
    ``DESCRIBER_MODEL__SERVER__BASE_URL=http://vllm:8000/v1``."""


class DescriberSettings(ServiceSettings):
    """Topics: ``topics.products`` and ``topics.copy_requests`` in, ``topics.descriptions``
    (compacted; also read on start to skip unchanged products) and ``topics.copies`` out."""

    model_config = SettingsConfigDict(env_prefix="DESCRIBER_")

    model: GeneratorConfig = GeneratorConfig()
    lexicon: Path | None = None
    """Replaces the packaged default compliance lexicon (``data/compliance.json``)."""
    tenant_lexicons: dict[str, Path] = Field(default_factory=dict)
    """Per-tenant lexicon files layered on the default: extra terms, allowed words, disabled
    default terms."""
    near_duplicate: float = Field(default=0.7, gt=0.0, le=1.0)
    """Copy variants at least this similar (character trigrams) are treated as duplicates."""
    catch_up_timeout_seconds: float = Field(default=300.0, gt=0)
    """Longest the start-up may take to read the products topic to its end (every replica holds
    every tenant's product table); the service fails to start after that."""
    product_sync_seconds: float = Field(default=5.0, ge=0)
    """Before a batch with copy requests, wait up to this long for the product table to reach
    everything published so far, so a campaign may name a product announced a moment ago."""
    channel_limits: dict[str, dict[str, int]] = Field(
        default_factory=lambda: PipelineOptions().channel_limits
    )
    """Characters per channel and language (``en``, ``zh``); a request's ``max_length`` can
    only lower them."""

    def pipeline_options(self) -> PipelineOptions:
        return PipelineOptions(
            max_attempts=self.model.max_attempts,
            description_tokens=self.model.description_tokens,
            copy_tokens=self.model.copy_tokens,
            near_duplicate=self.near_duplicate,
            channel_limits=self.channel_limits,
        )
