"""The responder with the real multilingual encoder: Chinese and English answers, hand-offs, and
the adversarial tenant-isolation suite."""

from __future__ import annotations

import pytest

from shopstream.events import HandoffReason
from shopstream.models import TextEncoder
from shopstream_responder.answering import Question
from shopstream_responder.config import ResponderSettings
from shopstream_responder.knowledge import KnowledgeIndex
from shopstream_responder.model import ResponderModel
from support.responder import NORTH, SOUTH, leaks, run_suite, two_shop_responder

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def responder(
    e5_encoder: TextEncoder, minilm_encoder: TextEncoder
) -> tuple[ResponderModel, KnowledgeIndex]:
    # The service's defaults: e5 for every language, MiniLM blended in for English.
    settings = ResponderSettings(create_topics=False)
    assert settings.model.english_encoder is not None
    return two_shop_responder(e5_encoder, settings, english_embedder=minilm_encoder)


def test_answers_in_both_languages_come_from_the_right_passages(
    responder: tuple[ResponderModel, KnowledgeIndex],
) -> None:
    model, index = responder
    asked = [
        "How many days do I have to return an item?",
        "我可以在多少天内申请无理由退货？",
        "How long does delivery take?",
        "退款多久到账？",
    ]
    drafts = model.predict_batch([(Question(NORTH, text), index.snapshot(NORTH)) for text in asked])
    cited = [draft.citations[0].passage.passage_id if draft.citations else None for draft in drafts]
    assert cited[0] == "returns-policy#0"
    assert cited[1] == "returns-policy-zh#0"
    assert cited[2] is not None
    assert cited[2].startswith("shipping#")
    assert cited[3] == "returns-policy-zh#0"
    assert all(draft.handoff is None for draft in drafts), [d.handoff for d in drafts]


def test_questions_the_knowledge_does_not_cover_are_handed_off(
    responder: tuple[ResponderModel, KnowledgeIndex],
) -> None:
    model, index = responder
    off_topic = [
        "Can you recommend a good telescope for astronomy?",
        "你们的店铺招聘兼职吗？",
        "What is the capital of Australia?",
    ]
    drafts = model.predict_batch([(Question(NORTH, t), index.snapshot(NORTH)) for t in off_topic])
    assert [d.handoff for d in drafts] == [HandoffReason.LOW_CONFIDENCE] * 3, [
        (d.confidence, d.citations[0].passage.passage_id if d.citations else None) for d in drafts
    ]


def test_no_leak_between_shops_with_the_real_encoder(
    responder: tuple[ResponderModel, KnowledgeIndex],
) -> None:
    model, index = responder
    answers = run_suite(model, index)
    assert leaks(NORTH, answers[NORTH], index) == []
    assert leaks(SOUTH, answers[SOUTH], index) == []
