"""Describer test helpers: a scripted generator (a fake, unit tests only) and sample products."""

from __future__ import annotations

from shopstream.events import ProductUpserted
from shopstream.settings import KafkaSettings
from shopstream.topics import TopicSettings
from shopstream_describer.config import DescriberSettings, GeneratorConfig
from shopstream_describer.generation import GenerationRequest
from support.kafka import prefixed_topics


class ScriptedGenerator:
    """Answers each attempt with the next scripted text (per prompt, same for all)."""

    model_id = "scripted"
    model_revision = "rev-1"

    def __init__(self, *attempts: str) -> None:
        self.attempts = attempts
        self.calls: list[tuple[int, int]] = []

    def supports(self, locale: str) -> bool:
        return locale == "en"

    def generate(self, request: GenerationRequest) -> list[str]:
        self.calls.append((request.attempt, len(request.prompts)))
        text = self.attempts[min(request.attempt, len(self.attempts)) - 1]
        count = len(request.prompts)
        return [f"{text} {index}." if "{n}" in text else text for index in range(count)]


def describer_topics(prefix: str) -> TopicSettings:
    """The describer's four topics named for one test, two partitions each."""
    names = ("products", "copy_requests", "descriptions", "copies")
    return prefixed_topics(prefix, *names, partitions=2)


def composer_settings(kafka: KafkaSettings, prefix: str) -> DescriberSettings:
    """The describer on `describer_topics(prefix)` with no generator: the composer writes."""
    return DescriberSettings(
        kafka=kafka,
        topics=describer_topics(prefix),
        group_id=f"{prefix}.group",
        http_port=0,
        model=GeneratorConfig(generator=None),
    )


def bilingual_products(tenant: str) -> list[ProductUpserted]:
    """A bag described in English and a skirt in Chinese, for the real-broker describer tests."""
    return [
        ProductUpserted(
            tenant_id=tenant,
            payload={
                "product_id": "bag-1",
                "title": "Canvas Tote Bag",
                "brand": "Acme",
                "attributes": {"colour": "Navy", "material": "Canvas"},
                "target_locales": ["en"],
            },
        ),
        ProductUpserted(
            tenant_id=tenant,
            payload={
                "product_id": "skirt-1",
                "title": "半身裙",
                "locale": "zh",
                "attributes": {"材质": "针织", "颜色": "黑色", "风格": "复古"},
            },
        ),
    ]
