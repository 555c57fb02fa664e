"""Tuning the describer's generator: the held-out split, the gate on training copy, the adapter
setting. (The training loop itself runs in `shopstream describer tune`; its figures are in the
packaged adapter's metadata and the README.)"""

from __future__ import annotations

from pathlib import Path

from shopstream.events import ProductUpsertedPayload
from shopstream_describer.compliance import Lexicons
from shopstream_describer.config import DEFAULT_GENERATOR, GeneratorConfig, packaged_adapter
from shopstream_describer.evaluation import EvalRow, held_out, select_split
from shopstream_describer.facts import ProductFacts
from shopstream_describer.tuning import TuningSettings, clean_copy, training_pairs

LEXICON = Lexicons().default


def row(
    number: int, reference: str | None = "这款上衣采用棉质面料。", **attributes: str
) -> EvalRow:
    payload = ProductUpsertedPayload(
        product_id=str(number),
        title=f"上衣 {number}",
        locale="zh-CN",
        attributes=attributes or {"材质": "棉", "编号": str(number)},
    )
    return EvalRow(payload, reference)


def test_the_held_out_split_is_about_a_fifth_and_stable() -> None:
    rows = [row(number) for number in range(1000)]
    test = select_split(rows, "test")
    train = select_split(rows, "train")
    assert 150 <= len(test) <= 250
    assert len(test) + len(train) == 1000
    assert not {id(r) for r in test} & {id(r) for r in train}
    assert [held_out(r) for r in rows] == [held_out(row(n)) for n in range(1000)]


def test_clauses_the_gate_would_reject_are_dropped_from_training_copy() -> None:
    facts = ProductFacts.from_payload(
        ProductUpsertedPayload(
            product_id="p", title="上衣", locale="zh-CN", attributes={"材质": "棉", "颜色": "白色"}
        )
    )
    copy = "这款BRAND白色上衣采用棉质面料，面料轻薄透气，是全网最好的上衣，简约大方。"
    cleaned = clean_copy(copy, facts, LEXICON)
    assert "透气" not in cleaned, "an unsupported property claim is not taught"
    assert "最好" not in cleaned, "a compliance term is not taught"
    assert "BRAND" not in cleaned
    assert cleaned.startswith("这款白色上衣采用棉质面料，")
    assert cleaned.endswith("简约大方。")


def test_training_pairs_skip_held_out_rows_and_mostly_ungrounded_copy() -> None:
    rows = [row(number) for number in range(60)]
    rows.append(row(99, reference="面料轻薄透气，防水防晒，保暖加厚。好看。"))
    pairs = training_pairs(rows, LEXICON, TuningSettings())
    trained_titles = {job.facts.title for job, _ in pairs}
    assert trained_titles == {r.payload.title for r in rows[:60] if not held_out(r)}
    assert "上衣 99" not in trained_titles, "copy that is mostly invented claims is skipped"


def test_rows_per_language_caps_a_language() -> None:
    rows = [row(number) for number in range(200)]
    pairs = training_pairs(rows, LEXICON, TuningSettings(rows_per_language={"zh": 7}))
    assert len(pairs) == 7


def test_the_packaged_adapter_applies_to_the_default_generator_only(tmp_path: Path) -> None:
    assert GeneratorConfig().adapter_path() == packaged_adapter()
    assert GeneratorConfig(generator="Qwen/Qwen2.5-7B-Instruct").adapter_path() is None
    assert GeneratorConfig(adapter="none").adapter_path() is None
    assert GeneratorConfig(backend="openai").adapter_path() is None
    assert GeneratorConfig(generator="x", adapter=str(tmp_path)).adapter_path() == tmp_path


def test_the_packaged_adapter_records_how_it_was_made() -> None:
    import json  # noqa: PLC0415

    metadata = json.loads((packaged_adapter() / "adapter.json").read_text(encoding="utf-8"))
    assert metadata["base_model"] == DEFAULT_GENERATOR
    assert metadata["trained_for"] == "describe"
    assert [item["file"] for item in metadata["data"]] == ["advertisegen_zh.jsonl"]
    assert metadata["examples_by_language"]["en"] == 0, "Chinese only: see the README"
    assert metadata["final_loss"] < metadata["first_loss"]
    assert (packaged_adapter() / "adapter.safetensors").stat().st_size < 10_000_000
