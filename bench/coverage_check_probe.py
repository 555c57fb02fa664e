"""Would a language model's yes/no check catch the uncovered questions the coverage model lets
through? A probe for the responder's optional verification step, not a feature yet.

The Bitext file with ``--unseen-intents`` left out of the knowledge (``evaluation.load_intents``)
is answered as the service answers it; of the questions that get an answer at the default
thresholds (no rule hand-off, confidence and coverage above theirs), ``--per-label`` covered and
as many uncovered ones are sampled (seeded). The generator is asked, per question, whether it
asks for the same thing as the questions of the article it would be answered from (the
article's FAQ headings), and its yes-minus-no log-odds is the verdict. Printed side by side for
the same sample: how well the verdict separates covered from uncovered (ROC AUC) and how well
the coverage probability itself does (the baseline: raising ``MIN_PROBABILITY``), the share of
each kept at several verdict thresholds, and seconds per question after loading.

    uv run --frozen python bench/coverage_check_probe.py [--generator qwen2.5-coder-1.5b-instruct]
        [--seed 13] [--unseen-intents 10] [--per-label 50] [--threads 2] [--json OUT]

The 1.5B generator needs ``shopstream-describer[qwen-1-5b]`` (or a converted model's folder).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from shopstream.models import TextGenerator, configure_threads
from shopstream_responder.answering import Draft, Question
from shopstream_responder.config import ResponderSettings
from shopstream_responder.evaluation import (
    EVAL_TENANT,
    RULE_HANDOFFS,
    EvalQuestion,
    load_intents,
    never_hand_off,
)
from shopstream_responder.intents import IntentClassifier, IntentRules
from shopstream_responder.knowledge import KnowledgeIndex, TenantSnapshot
from shopstream_responder.model import ResponderModel

ROOT = Path(__file__).resolve().parent.parent
BITEXT = ROOT.parent / "shared" / "data" / "responder" / "bitext_support_en.csv"
VERDICT_THRESHOLDS = (-1.0, -0.5, 0.0, 0.5, 1.0)
SYSTEM = (
    "You check whether a shop's help article is about the customer's request. Related is not "
    "enough: the article must be about the same action on the same thing."
)


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (pos.size * neg.size))


def prompt(question: str, draft: Draft, snapshot: TenantSnapshot) -> list[dict[str, str]]:
    rows = snapshot.document_rows(draft.citations[0].row)
    headings = list(dict.fromkeys(snapshot.passages[row].heading for row in rows))
    listed = "\n".join(f"- {heading}" for heading in headings)
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": f"The help article answers these customer questions:\n{listed}\n\n"
            f"New customer question: {question}\n\nIs the new question asking for the same "
            "thing as the article's questions? Reply yes or no.",
        },
    ]


def answered_sample(
    args: argparse.Namespace, settings: ResponderSettings
) -> tuple[list[tuple[EvalQuestion, Draft]], TenantSnapshot, dict[str, int]]:
    eval_set = load_intents(
        args.data, settings, kb_per_intent=5, unseen_intents=args.unseen_intents, seed=args.seed
    )
    rules = IntentRules.from_file(settings.intent_rules)
    configured = settings.answering
    model = ResponderModel(settings.model, never_hand_off(configured), rules)
    model.load()
    index = KnowledgeIndex(topic_of=IntentClassifier(rules).rule_intent)
    for document, vectors in zip(
        eval_set.documents, model.embed_documents(eval_set.documents), strict=True
    ):
        index.upsert(document, vectors)
    snapshot = index.snapshot(EVAL_TENANT)
    assert snapshot is not None
    drafts: list[Draft] = []
    batch = settings.batch.max_records
    for start in range(0, len(eval_set.questions), batch):
        chunk = eval_set.questions[start : start + batch]
        drafts += model.predict_batch([(Question(EVAL_TENANT, q.text), snapshot) for q in chunk])
    model.unload()
    minimum = configured.coverage.min_probability
    passed = [
        (question, draft)
        for question, draft in zip(eval_set.questions, drafts, strict=True)
        if draft.handoff not in RULE_HANDOFFS
        and draft.confidence >= configured.handoff_below
        and draft.coverage is not None
        and draft.coverage >= minimum
    ]
    covered = [pair for pair in passed if pair[0].expected_doc is not None]
    uncovered = [pair for pair in passed if pair[0].expected_doc is None]
    rng = random.Random(args.seed)
    count = min(args.per_label, len(covered), len(uncovered))
    sample = rng.sample(covered, count) + rng.sample(uncovered, count)
    counts = {"answered_covered": len(covered), "answered_uncovered": len(uncovered)}
    return sample, snapshot, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=BITEXT)
    parser.add_argument("--generator", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--unseen-intents", type=int, default=10)
    parser.add_argument("--per-label", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    configure_threads(args.threads)
    settings = ResponderSettings()
    sample, snapshot, counts = answered_sample(args, settings)
    generator = TextGenerator(args.generator)
    generator.load()
    started = time.perf_counter()
    verdicts = np.asarray(
        generator.yes_no_log_odds(
            [prompt(question.text, draft, snapshot) for question, draft in sample],
            batch_size=args.batch_size,
        )
    )
    seconds = (time.perf_counter() - started) / len(sample)
    covered = np.asarray([question.expected_doc is not None for question, _ in sample])
    coverage = np.asarray([draft.coverage or 0.0 for _, draft in sample])
    report: dict[str, Any] = {
        "generator": f"{generator.model_id}@{generator.revision}",
        "seed": args.seed,
        "answered_at_default": counts,
        "sample": {"covered": int(covered.sum()), "uncovered": int((~covered).sum())},
        "auc_verdict": roc_auc(verdicts, covered),
        "auc_coverage_probability": roc_auc(coverage, covered),
        "seconds_per_question": seconds,
        "kept": [
            {
                "verdict_above": threshold,
                "covered_kept": float(np.mean(verdicts[covered] > threshold)),
                "uncovered_kept": float(np.mean(verdicts[~covered] > threshold)),
            }
            for threshold in VERDICT_THRESHOLDS
        ],
    }
    print(
        f"{report['generator']}: answered at the defaults {counts}; sample "
        f"{report['sample']}; {seconds:.2f} s per question"
    )
    print(
        f"ROC AUC covered vs uncovered: verdict {report['auc_verdict']:.3f}, coverage "
        f"probability (baseline) {report['auc_coverage_probability']:.3f}"
    )
    for row in report["kept"]:
        print(
            f"  verdict > {row['verdict_above']:+.1f}: covered kept {row['covered_kept']:.0%}, "
            f"uncovered kept {row['uncovered_kept']:.0%}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
