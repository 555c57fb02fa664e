"""The generator behind the describer: any causal LM, decoding settings from configuration."""

from __future__ import annotations

from shopstream.models import LoadReport, TextGenerator
from shopstream_describer.config import GeneratorConfig
from shopstream_describer.generation import GenerationRequest


class DescriberModel:
    """`load` / `generate` / `unload`; knows nothing about Kafka or products."""

    def __init__(self, config: GeneratorConfig) -> None:
        if not config.generator:
            raise ValueError("DescriberModel needs a generator; leave it out to compose only")
        self.config = config
        self._generator = TextGenerator(
            config.generator,
            revision=config.revision,
            adapter=config.adapter_path(),
            share_prompt_prefix=config.share_prompt_prefix,
            **config.runtime_options(),
        )

    @property
    def model_id(self) -> str:
        return self._generator.model_id

    @property
    def model_revision(self) -> str:
        return self._generator.revision

    def supports(self, locale: str) -> bool:
        return locale.split("-", 1)[0] in self.config.languages

    def load(self) -> LoadReport:
        return self._generator.load()

    def generate(self, request: GenerationRequest) -> list[str]:
        sample = request.attempt > 1 or self.config.first_attempt_sampling
        return self._generator.generate(
            request.prompts,
            max_new_tokens=request.max_new_tokens,
            do_sample=sample,
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            repetition_penalty=self.config.repetition_penalty,
            no_repeat_ngram_size=self.config.no_repeat_ngram_size,
            seed=self.config.seed + request.attempt if sample else None,
            batch_size=self.config.batch_size,
            banned_phrases=request.avoid if self.config.avoid_unsupported_terms else None,
        )

    def unload(self) -> None:
        self._generator.unload()
