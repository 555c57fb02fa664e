"""Quality of the responder on labelled questions, through the same code the service runs.

Two formats:

* ``intents``: CSV with ``instruction,intent,response``. Per intent, ``kb_per_intent`` rows
  become one FAQ article of the knowledge base (``Q: instruction`` / ``A: response`` pairs under
  an opaque doc id); every other row is a question. An answer is correct when its first
  citation is a passage of the question's intent's article. ``unseen_intents`` intents get no
  article at all: their questions measure how often the responder answers what its knowledge
  does not cover (it should hand them off as ``not_covered``).
* ``squad``: SQuAD-style JSON. Every context is a document; an answer is correct when its first
  citation is the question's context, and its text is checked for the gold answer.

``split`` keeps the first 30 % of the shuffled questions (``dev``) or the rest (``test``):
choose settings on one, report on the other.

Hand-offs by rule (the customer asks for a person, an angry complaint, an intent that needs
account access) count as not answered; the threshold table shows answered share and accuracy if
``handoff_below`` were set to each value, over the questions no rule hands off. The coverage
table shows, for each ``coverage.min_probability``, the covered questions answered (rule
hand-offs count as not answered, as the bar counts them), correct among them, and the
uncovered questions answered anyway.
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shopstream.events import HandoffReason, KnowledgeKind
from shopstream_responder.answering import Draft, Question
from shopstream_responder.config import AnsweringConfig, ResponderSettings
from shopstream_responder.intents import IntentClassifier, IntentRules
from shopstream_responder.knowledge import (
    Document,
    DocumentKey,
    KnowledgeIndex,
    Source,
    chunk_document,
)
from shopstream_responder.model import Embedder, ResponderModel
from shopstream_responder.text import detect_locale

EVAL_TENANT = "eval-shop"
THRESHOLDS = (0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9)
COVERAGE_THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
RULE_HANDOFFS = frozenset(
    {
        HandoffReason.CUSTOMER_ASKED,
        HandoffReason.ANGRY_COMPLAINT,
        HandoffReason.NEEDS_ACCOUNT_ACCESS,
    }
)

Format = Literal["intents", "squad"]
Split = Literal["all", "dev", "test"]
DEV_SHARE = 0.3
"""Share of the (shuffled) questions in the ``dev`` split. Settings are chosen on ``dev``
and reported on ``test``, so the reported figures are not tuned on the questions they count."""


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    text: str
    expected_doc: str | None
    """The doc id whose passages answer it; None when the knowledge does not cover it."""
    label: str
    gold_answers: tuple[str, ...] = ()


@dataclass
class EvalSet:
    documents: list[Document]
    questions: list[EvalQuestion]
    doc_labels: dict[str, str] = field(default_factory=dict)


def _faq_document(
    doc_id: str, pairs: Sequence[tuple[str, str]], settings: ResponderSettings
) -> Document:
    body = "\n\n".join(f"Q: {question}\nA: {answer}" for question, answer in pairs)
    title = f"Help article {doc_id}"
    return Document(
        key=DocumentKey(EVAL_TENANT, Source.KNOWLEDGE, doc_id),
        title=title,
        passages=chunk_document(title, body, settings.chunking),
        kind=KnowledgeKind.FAQ,
        locale="en",
    )


def load_intents(
    path: Path,
    settings: ResponderSettings,
    *,
    kb_per_intent: int,
    unseen_intents: int,
    seed: int,
) -> EvalSet:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [
            (row["instruction"].strip(), row["intent"].strip(), row["response"].strip())
            for row in csv.DictReader(handle)
            if row.get("instruction") and row.get("intent") and row.get("response")
        ]
    by_intent: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for instruction, intent, response in rows:
        by_intent[intent].append((instruction, response))
    rng = random.Random(seed)  # noqa: S311 - a reproducible split, not a secret
    intents = sorted(by_intent)
    unseen = set(rng.sample(intents, min(unseen_intents, len(intents))))
    eval_set = EvalSet(documents=[], questions=[])
    for number, intent in enumerate(intents):
        examples = by_intent[intent][:]
        rng.shuffle(examples)
        doc_id = None
        if intent not in unseen:
            doc_id = f"faq-{number:03d}"
            eval_set.documents.append(_faq_document(doc_id, examples[:kb_per_intent], settings))
            eval_set.doc_labels[doc_id] = intent
            examples = examples[kb_per_intent:]
        eval_set.questions += [EvalQuestion(text, doc_id, intent) for text, _ in examples]
    rng.shuffle(eval_set.questions)
    return eval_set


def load_squad(path: Path, settings: ResponderSettings) -> EvalSet:
    data = json.loads(path.read_text(encoding="utf-8"))
    eval_set = EvalSet(documents=[], questions=[])
    for article_number, article in enumerate(data["data"]):
        title = str(article.get("title") or f"article {article_number}").replace("_", " ")
        for paragraph_number, paragraph in enumerate(article["paragraphs"]):
            doc_id = f"ctx-{article_number:04d}-{paragraph_number:03d}"
            context = str(paragraph["context"])
            # An empty context only carries unanswerable questions; it is not knowledge.
            if context.strip():
                eval_set.documents.append(
                    Document(
                        key=DocumentKey(EVAL_TENANT, Source.KNOWLEDGE, doc_id),
                        title=title[:512],
                        passages=chunk_document(title, context, settings.chunking),
                        kind=KnowledgeKind.OTHER,
                        locale=detect_locale(context),
                    )
                )
                eval_set.doc_labels[doc_id] = title
            for qa in paragraph["qas"]:
                impossible = bool(qa.get("is_impossible")) or not qa.get("answers")
                eval_set.questions.append(
                    EvalQuestion(
                        text=qa["question"],
                        expected_doc=None if impossible else doc_id,
                        label=title,
                        gold_answers=tuple(answer["text"] for answer in qa.get("answers", [])),
                    )
                )
    return eval_set


@dataclass(frozen=True, slots=True)
class Outcome:
    question: EvalQuestion
    draft: Draft

    @property
    def cited_doc(self) -> str | None:
        return self.draft.citations[0].passage.doc_id if self.draft.citations else None

    @property
    def correct(self) -> bool:
        return (
            self.question.expected_doc is not None and self.cited_doc == self.question.expected_doc
        )

    @property
    def rule_handoff(self) -> bool:
        return self.draft.handoff in RULE_HANDOFFS

    def covered_enough(self, min_coverage: float) -> bool:
        """The coverage model (when the tenant has one) says the knowledge covers it."""
        coverage = self.draft.coverage
        return coverage is None or coverage >= min_coverage

    def answered(self, threshold: float, min_coverage: float = 0.0) -> bool:
        return (
            not self.rule_handoff
            and self.draft.confidence >= threshold
            and self.covered_enough(min_coverage)
        )


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _reason(outcome: Outcome, threshold: float, min_coverage: float) -> str | None:
    """The hand-off reason at these thresholds; None when answered."""
    if outcome.rule_handoff and outcome.draft.handoff is not None:
        return outcome.draft.handoff.value
    if not outcome.covered_enough(min_coverage):
        return HandoffReason.NOT_COVERED.value
    if outcome.draft.confidence < threshold:
        return HandoffReason.LOW_CONFIDENCE.value
    return None


def summarise(
    outcomes: Sequence[Outcome], threshold: float, min_coverage: float = 0.0
) -> dict[str, Any]:
    """Answered share, accuracy among answered, hand-off shares, at one threshold."""
    covered = [outcome for outcome in outcomes if outcome.question.expected_doc is not None]
    answered = [outcome for outcome in covered if outcome.answered(threshold, min_coverage)]
    correct = sum(1 for outcome in answered if outcome.correct)
    reasons = Counter(
        reason
        for outcome in covered
        if (reason := _reason(outcome, threshold, min_coverage)) is not None
    )
    uncovered = [outcome for outcome in outcomes if outcome.question.expected_doc is None]
    uncovered_reasons = Counter(
        reason
        for outcome in uncovered
        if (reason := _reason(outcome, threshold, min_coverage)) is not None
    )
    return {
        "threshold": threshold,
        "questions": len(covered),
        "answered": len(answered),
        "answered_share": _share(len(answered), len(covered)),
        "accuracy_among_answered": _share(correct, len(answered)),
        "accuracy_all_questions": _share(sum(1 for o in covered if o.correct), len(covered)),
        "handoff_share": _share(len(covered) - len(answered), len(covered)),
        "handoff_reasons": dict(reasons.most_common()),
        "uncovered_questions": len(uncovered),
        "uncovered_answered_share": _share(
            sum(1 for outcome in uncovered if outcome.answered(threshold, min_coverage)),
            len(uncovered),
        ),
        "uncovered_handoff_reasons": dict(uncovered_reasons.most_common()),
    }


def coverage_table(outcomes: Sequence[Outcome], threshold: float) -> list[dict[str, Any]]:
    """At confidence ``threshold``, for each coverage threshold: covered questions answered
    (rule hand-offs count as not answered), correct among them, uncovered answered."""
    covered = [outcome for outcome in outcomes if outcome.question.expected_doc is not None]
    uncovered = [outcome for outcome in outcomes if outcome.question.expected_doc is None]
    rows = []
    for min_coverage in COVERAGE_THRESHOLDS:
        answered = [outcome for outcome in covered if outcome.answered(threshold, min_coverage)]
        rows.append(
            {
                "min_coverage": min_coverage,
                "covered_answered_share": _share(len(answered), len(covered)),
                "accuracy_among_answered": _share(
                    sum(1 for outcome in answered if outcome.correct), len(answered)
                ),
                "uncovered_answered_share": _share(
                    sum(1 for o in uncovered if o.answered(threshold, min_coverage)),
                    len(uncovered),
                ),
            }
        )
    return rows


def threshold_table(outcomes: Sequence[Outcome], min_coverage: float = 0.0) -> list[dict[str, Any]]:
    """Answered share and accuracy among answered if ``handoff_below`` were each threshold:
    over the questions the knowledge covers and no rule hands off, and (answered share) over
    every covered question, rule hand-offs included, as the bar counts it."""
    covered = [outcome for outcome in outcomes if outcome.question.expected_doc is not None]
    candidates = [outcome for outcome in covered if not outcome.rule_handoff]
    rows = []
    for threshold in THRESHOLDS:
        answered = [outcome for outcome in candidates if outcome.answered(threshold, min_coverage)]
        rows.append(
            {
                "threshold": threshold,
                "answered_share": _share(len(answered), len(candidates)),
                "answered_share_all": _share(len(answered), len(covered)),
                "accuracy_among_answered": _share(
                    sum(1 for outcome in answered if outcome.correct), len(answered)
                ),
            }
        )
    return rows


def per_label(
    outcomes: Sequence[Outcome], threshold: float, min_coverage: float = 0.0
) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        groups[outcome.question.label].append(outcome)
    report = {}
    for label, members in sorted(groups.items()):
        answered = [outcome for outcome in members if outcome.answered(threshold, min_coverage)]
        report[label] = {
            "questions": len(members),
            "answered_share": _share(len(answered), len(members)),
            "accuracy_among_answered": _share(sum(1 for o in answered if o.correct), len(answered)),
            "detected_intents": dict(Counter(o.draft.intent.value for o in members).most_common(3)),
        }
    return report


def gold_answer_share(
    outcomes: Sequence[Outcome], threshold: float, min_coverage: float = 0.0
) -> float | None:
    """SQuAD: share of correct answers whose text contains one of the gold answers."""
    answered = [
        outcome
        for outcome in outcomes
        if outcome.correct
        and outcome.answered(threshold, min_coverage)
        and outcome.question.gold_answers
    ]
    contained = sum(
        1
        for outcome in answered
        if any(
            gold.lower() in (outcome.draft.answer or "").lower()
            for gold in outcome.question.gold_answers
        )
    )
    return _share(contained, len(answered))


def never_hand_off(configured: AnsweringConfig) -> AnsweringConfig:
    """`configured` with no hand-off for low confidence or coverage: an evaluation answers
    everything and applies the thresholds afterwards."""
    return configured.model_copy(
        update={
            "handoff_below": 0.0,
            "coverage": configured.coverage.model_copy(update={"min_probability": 0.0}),
        }
    )


def select_split(questions: Sequence[EvalQuestion], split: Split) -> list[EvalQuestion]:
    """The first ``DEV_SHARE`` of the shuffled questions are ``dev``, the rest ``test``."""
    boundary = round(len(questions) * DEV_SHARE)
    if split == "dev":
        return list(questions[:boundary])
    if split == "test":
        return list(questions[boundary:])
    return list(questions)


def evaluate_file(
    path: Path,
    data_format: Format,
    settings: ResponderSettings,
    *,
    limit: int | None = None,
    kb_per_intent: int = 5,
    unseen_intents: int = 0,
    seed: int = 13,
    split: Split = "all",
    embedder: Embedder | None = None,
    english_embedder: Embedder | None = None,
    progress: Callable[[str], None] | None = None,
    answered: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Build the knowledge base, answer every question, and report."""
    started = time.perf_counter()
    if data_format == "intents":
        eval_set = load_intents(
            path, settings, kb_per_intent=kb_per_intent, unseen_intents=unseen_intents, seed=seed
        )
    else:
        eval_set = load_squad(path, settings)
    questions = select_split(eval_set.questions, split)
    questions = questions[:limit] if limit is not None else questions
    rules = IntentRules.from_file(settings.intent_rules)
    # Every question gets its best passage, confidence and coverage, so the report can apply
    # each threshold afterwards.
    configured = settings.answering
    model = ResponderModel(
        settings.model,
        never_hand_off(configured),
        rules,
        embedder=embedder,
        english_embedder=english_embedder,
    )
    model.load()
    loaded = time.perf_counter()
    index = KnowledgeIndex(topic_of=IntentClassifier(rules).rule_intent)
    for document, vectors in zip(
        eval_set.documents, model.embed_documents(eval_set.documents), strict=True
    ):
        index.upsert(document, vectors)
    indexed = time.perf_counter()
    if progress is not None:
        progress(f"indexed {index.stats().passages} passages; answering {len(questions)} questions")
    snapshot = index.snapshot(EVAL_TENANT)
    batch = settings.batch.max_records
    outcomes: list[Outcome] = []
    for start in range(0, len(questions), batch):
        chunk = questions[start : start + batch]
        drafts = model.predict_batch(
            [(Question(EVAL_TENANT, question.text), snapshot) for question in chunk]
        )
        outcomes += [Outcome(q, d) for q, d in zip(chunk, drafts, strict=True)]
        if answered is not None:
            answered(len(outcomes), len(questions))
    answered_at = time.perf_counter()
    model.unload()
    threshold = configured.handoff_below
    min_coverage = configured.coverage.min_probability if configured.coverage.enabled else 0.0
    learned = any(outcome.draft.coverage is not None for outcome in outcomes)
    report: dict[str, Any] = {
        "data": str(path),
        "format": data_format,
        "model_id": model.model_id,
        "model_revision": model.model_revision,
        "knowledge": {
            "documents": len(eval_set.documents),
            "passages": index.stats().passages,
            "kb_per_intent": kb_per_intent if data_format == "intents" else None,
            "unseen_intents": unseen_intents if data_format == "intents" else None,
        },
        "split": split,
        "handoff_below": threshold,
        "min_coverage": min_coverage,
        "coverage_learned": learned,
        "summary": summarise(outcomes, threshold, min_coverage),
        "thresholds": threshold_table(outcomes, min_coverage),
        "coverage": coverage_table(outcomes, threshold),
        "timing": {
            "model_load_seconds": loaded - started,
            "index_seconds": indexed - loaded,
            "answer_seconds": answered_at - indexed,
            "questions_per_second": len(questions) / max(answered_at - indexed, 1e-9),
        },
    }
    if data_format == "intents":
        report["per_intent"] = per_label(outcomes, threshold, min_coverage)
    else:
        report["gold_answer_in_correct_answers"] = gold_answer_share(
            outcomes, threshold, min_coverage
        )
    return report
