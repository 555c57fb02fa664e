"""The evaluation harness on tiny data sets in both formats, with the hashing encoder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from shopstream_responder.evaluation import evaluate_file
from support.responder import HashingEmbedder, hashing_settings

pytestmark = pytest.mark.unit

INTENTS = {
    "refund": [
        ("how do I get a refund for my order", "Refunds are paid within five days of the return."),
        ("I want a refund please", "We refund the full price once the return arrives."),
        ("refund for a broken kettle", "Broken items are refunded in full."),
    ],
    "invoice": [
        ("where can I download my invoice", "Invoices are in your account under Orders."),
        ("I need an invoice for my purchase", "Every order has a PDF invoice in your account."),
        ("send me the invoice again", "Open Orders and download the invoice PDF."),
    ],
    "delivery": [
        ("how long does delivery take", "Delivery takes two to four working days."),
        ("when will my parcel arrive with delivery", "Parcels arrive within four working days."),
        ("delivery time to Berlin", "Delivery to Germany takes three working days."),
    ],
}


def test_intents_format_reports_answered_share_and_accuracy(tmp_path: Path) -> None:
    data = tmp_path / "support.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["instruction", "intent", "response"])
        for intent, rows in INTENTS.items():
            writer.writerows((instruction, intent, response) for instruction, response in rows)
        writer.writerow(["I want to speak to a human", "human", "Connecting you to an agent."])
    report = evaluate_file(
        data, "intents", hashing_settings(), kb_per_intent=2, embedder=HashingEmbedder()
    )
    summary = report["summary"]
    assert report["knowledge"]["documents"] == 4
    assert summary["questions"] == 3, "one held-out question per intent with two rows kept"
    assert summary["uncovered_questions"] == 0
    assert summary["accuracy_among_answered"] == 1.0
    assert summary["answered_share"] == 1.0
    assert report["thresholds"][0]["threshold"] == 0.0
    assert set(report["per_intent"]) == {"refund", "invoice", "delivery"}

    unseen = evaluate_file(
        data,
        "intents",
        hashing_settings(),
        kb_per_intent=2,
        unseen_intents=1,
        seed=3,
        embedder=HashingEmbedder(),
    )
    assert unseen["knowledge"]["documents"] == 3
    assert unseen["summary"]["uncovered_questions"] >= 1


def test_squad_format_checks_the_cited_context_and_the_gold_answer(tmp_path: Path) -> None:
    data = tmp_path / "squad.json"
    contexts = [
        (
            "Kettles are made of brushed steel and hold 1.7 litres.",
            "What do kettles hold?",
            "1.7 litres",
        ),
        (
            "Toasters have four slots and a defrost button.",
            "How many slots do toasters have?",
            "four",
        ),
    ]
    squad = {
        "data": [
            {
                "title": "Kitchen",
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [{"id": str(n), "question": question, "answers": [{"text": gold}]}],
                    }
                    for n, (context, question, gold) in enumerate(contexts)
                ],
            }
        ]
    }
    data.write_text(json.dumps(squad), encoding="utf-8")
    settings = hashing_settings()
    answer_all = settings.answering.model_copy(update={"handoff_below": 0.0})
    settings = settings.model_copy(update={"answering": answer_all})
    report = evaluate_file(data, "squad", settings, embedder=HashingEmbedder())
    assert report["summary"]["accuracy_all_questions"] == 1.0
    assert report["gold_answer_in_correct_answers"] == 1.0
