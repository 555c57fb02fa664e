"""From a question, its embedding and its shop's knowledge to an answer or a hand-off.

Pure numpy and rules, no model and no Kafka: the encoder's vectors come in, a draft answer
goes out. The tenant is never read from the question's text; the caller passes the snapshot of
the tenant named by the event's envelope, and only that snapshot is searched.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shopstream.events import HandoffReason, Intent
from shopstream_responder.config import AnsweringConfig
from shopstream_responder.coverage import (
    CoverageModel,
    HeadingQuestions,
    score_range,
    train_coverage,
)
from shopstream_responder.encoding import QuestionVectors
from shopstream_responder.intents import IntentClassifier, IntentDecision
from shopstream_responder.knowledge import HEADING_SHARE, Passage, TenantSnapshot
from shopstream_responder.reranker import ArticleClassifier, train
from shopstream_responder.text import (
    detect_locale,
    language_of,
    mask_digit_runs,
    overlap_terms,
    split_sentences,
)

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Question:
    tenant_id: str
    text: str
    locale: str | None = None
    product_id: str | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    passage: Passage
    row: int
    score: float
    """Mean cosine similarity of the question to the passage and its heading, in [-1, 1]."""
    rank_score: float
    """The score that ranked it: ``score`` plus the language bonus, minus the topic penalty."""


@dataclass(frozen=True, slots=True)
class Draft:
    """What the responder decided for one question, before it becomes an event."""

    answer: str | None
    citations: tuple[Hit, ...]
    confidence: float
    intent: Intent
    handoff: HandoffReason | None
    locale: str
    injection: bool
    rephrased: bool = False
    """The answer is the generator's supported rephrasing, not the extractive text."""
    rephrase_rejected: bool = False
    """The generator's rephrasing failed the support check; the extractive text stands."""
    coverage: float | None = None
    """Probability that the tenant's knowledge covers the question at all
    (``shopstream_responder.coverage``); None when the tenant has too few FAQ articles to
    learn it from, or coverage is off."""
    nearest: Hit | None = None
    """For a ``not_covered`` hand-off, the passage the question came closest to."""

    @property
    def answer_source(self) -> str:
        """Where the answer text came from: ``extractive``, ``rephrased`` or
        ``rephrase_rejected`` (extractive, after a rejected rephrasing)."""
        if self.rephrased:
            return "rephrased"
        return "rephrase_rejected" if self.rephrase_rejected else "extractive"


def _scores(
    snapshot: TenantSnapshot,
    query: Vector,
    rows: npt.NDArray[np.intp] | slice,
    *,
    language: str,
    topic: Intent | None,
    config: AnsweringConfig,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(cosine score, rank score) of the given rows for one question. A slice selects a view;
    an index array copies the rows, so a search of the whole snapshot passes a slice."""
    bodies = snapshot.vectors.bodies[rows]
    headings = snapshot.vectors.headings[rows]
    cosines = (1 - HEADING_SHARE) * (bodies @ query) + HEADING_SHARE * (headings @ query)
    ranked = cosines + config.same_language_bonus * (snapshot.languages[rows] == language)
    if topic is not None:
        topics = snapshot.topics[rows]
        ranked -= config.topic_mismatch_penalty * ((topics != "") & (topics != topic.value))
    return cosines, ranked


def _hits(
    snapshot: TenantSnapshot,
    rows: npt.NDArray[np.intp],
    cosines: npt.NDArray[np.float32],
    ranked: npt.NDArray[np.float32],
    order: npt.NDArray[np.intp],
) -> list[Hit]:
    """The scored `rows` as hits, in `order` (positions into `rows` and their scores)."""
    return [
        Hit(
            passage=snapshot.passages[int(rows[index])],
            row=int(rows[index]),
            score=float(np.clip(cosines[index], -1.0, 1.0)),
            rank_score=float(ranked[index]),
        )
        for index in order
    ]


def search(
    snapshot: TenantSnapshot,
    query: Vector,
    *,
    product_id: str | None,
    language: str,
    topic: Intent | None,
    config: AnsweringConfig,
    limit: int,
) -> list[Hit]:
    """The best passages of one tenant's snapshot, best first.

    A passage's score blends two cosines of the question (embedded as a query): to the
    passage's heading and text (embedded as a passage), and to its heading alone (embedded as a
    query too: a heading is a question, so like is compared with like, as e5 wants for
    paraphrases), weighted ``HEADING_SHARE``. Passages in the customer's
    language get a bonus; passages whose heading is about another intent than the question
    (both by rules) a penalty.
    """
    rows = snapshot.searchable_rows(product_id)
    selection: npt.NDArray[np.intp] | slice = slice(None) if rows is None else rows
    if rows is None:
        rows = np.arange(len(snapshot), dtype=np.intp)
    if rows.size == 0:
        return []
    cosines, ranked = _scores(
        snapshot, query, selection, language=language, topic=topic, config=config
    )
    count = min(limit, rows.size)
    best = np.argpartition(-ranked, count - 1)[:count]
    best = best[np.argsort(-ranked[best], kind="stable")]
    return _hits(snapshot, rows, cosines, ranked, best)


@dataclass(frozen=True, slots=True)
class DocumentMatch:
    """One document's standing for a question."""

    hits: tuple[Hit, ...]
    """Every passage of the document, best first."""
    score: float
    """Mean rank score of its ``document_headings`` best headings, each heading counted once
    (by its best passage)."""

    @property
    def best(self) -> Hit:
        return self.hits[0]


def rank_documents(
    snapshot: TenantSnapshot,
    query: Vector,
    hits: Sequence[Hit],
    *,
    language: str,
    topic: Intent | None,
    config: AnsweringConfig,
) -> list[DocumentMatch]:
    """The documents of ``hits``, scored on all their passages, best first.

    An FAQ article answers its topic under several phrasings of the question; one phrasing
    that happens to sit close to the customer's words is weaker evidence than several that
    do. So a document scores by the mean of its best few headings, not its single best
    passage (on the development split this alone moved the right article to the top for
    about three more questions in a hundred). A document without several headings (a policy
    under its title) scores by its best passage. A document is wholly general knowledge or
    wholly one product's facts, so every passage of a hit's document is searchable too.
    """
    matches: list[DocumentMatch] = []
    seen: set[int] = set()
    for hit in hits:
        span = snapshot.document_rows(hit.row)
        if span.start in seen:
            continue
        seen.add(span.start)
        rows = np.arange(span.start, span.stop, dtype=np.intp)
        cosines, ranked = _scores(
            snapshot,
            query,
            slice(span.start, span.stop),
            language=language,
            topic=topic,
            config=config,
        )
        order = np.argsort(-ranked, kind="stable")
        document_hits = tuple(_hits(snapshot, rows, cosines, ranked, order))
        best_per_heading: dict[str, float] = {}
        for document_hit in document_hits:
            best_per_heading.setdefault(document_hit.passage.heading, document_hit.rank_score)
        leading = list(best_per_heading.values())[: config.document_headings]
        matches.append(DocumentMatch(document_hits, sum(leading) / len(leading)))
    matches.sort(key=lambda match: -match.score)
    return matches


def rerank(
    matches: Sequence[DocumentMatch],
    snapshot: TenantSnapshot,
    probabilities: dict[int, float],
    weight: float,
) -> list[DocumentMatch] | None:
    """The classifier's documents among ``matches``, each scored by its score plus ``weight``
    times its probability, best first; None (rank by retrieval) unless the best two matches
    are both the classifier's, as it cannot weigh a document it was not trained on."""
    known = [
        (match, probabilities[start])
        for match in matches
        if (start := snapshot.document_rows(match.best.row).start) in probabilities
    ]
    if len(matches) < 2 or len(known) < 2 or known[1][0] is not matches[1]:
        return None
    blended = [DocumentMatch(match.hits, match.score + weight * p) for match, p in known]
    blended.sort(key=lambda match: -match.score)
    return blended


def confidence(
    matches: Sequence[DocumentMatch],
    snapshot: TenantSnapshot,
    config: AnsweringConfig,
    *,
    language: str = "en",
    blended: bool = False,
) -> float:
    """How sure the best document answers the question, in [0, 1]: the weaker of two signals.

    * Closeness: linear in the best document's best passage score between ``score_floor``
      and ``score_ceiling``: is anything in the knowledge about this at all?
    * Distinctness: the lead of the best document's score over the next document's, linear
      up to ``decisive_margin``. Two documents that score alike answer differently (else they
      would be one document), and the encoder cannot tell which one applies. A near copy of
      the best passage (``duplicate_similarity``) is not a rival, nor is a document in
      another language (the same policy translated).

    Chinese questions move floor and ceiling by ``chinese_score_offset``; questions scored
    with the English encoder blended in (``blended``) use ``english_score_floor`` and
    ``english_score_ceiling`` instead.
    """
    if not matches:
        return 0.0
    top = matches[0].best
    floor, ceiling = score_range(config, language=language, blended=blended)
    span = ceiling - floor
    closeness = min(1.0, max(0.0, (top.score - floor) / span))
    bodies = snapshot.vectors.bodies
    rival = next(
        (
            match
            for match in matches[1:]
            if match.best.passage.language == top.passage.language
            and float(bodies[match.best.row] @ bodies[top.row]) < config.duplicate_similarity
        ),
        None,
    )
    if rival is None:
        return closeness
    lead = matches[0].score - rival.score
    distinctness = min(1.0, max(0.0, lead / config.decisive_margin))
    return min(closeness, distinctness)


def extract_answer(question: str, passages: list[Passage], max_chars: int) -> str:
    """The passages' text, cut to the sentences that share most terms with the question when
    it is longer than ``max_chars``; sentences keep their original order."""
    sentences = [sentence for passage in passages for sentence in split_sentences(passage.text)]
    whole = _join(sentences)
    if len(whole) <= max_chars:
        return whole
    terms = overlap_terms(question)
    order = sorted(
        range(len(sentences)),
        key=lambda index: (-len(terms & overlap_terms(sentences[index])), index),
    )
    chosen: set[int] = set()
    size = 0
    for index in order:
        length = len(sentences[index]) + 1
        if chosen and size + length > max_chars:
            continue
        chosen.add(index)
        size += length
    text = _join([sentences[index] for index in sorted(chosen)])
    return text[:max_chars]


def _join(sentences: list[str]) -> str:
    text = ""
    for sentence in sentences:
        ascii_boundary = text and text[-1].isascii() and sentence[:1].isascii()
        text += f" {sentence}" if ascii_boundary else sentence
    return text


@dataclass(frozen=True, slots=True)
class TenantModels:
    """What the answerer learned from one snapshot of a tenant's knowledge."""

    snapshot: weakref.ref[TenantSnapshot]
    articles: ArticleClassifier | None
    coverage: CoverageModel | None


class Answerer:
    """Decides, per question: intent, passages, answer, confidence, coverage and hand-off."""

    def __init__(
        self,
        config: AnsweringConfig,
        classifier: IntentClassifier,
        heading_questions: HeadingQuestions | None = None,
    ) -> None:
        """``heading_questions`` turns stored heading vectors into question vectors for the
        coverage model's rehearsals; without it coverage is not learned."""
        self.config = config
        self.classifier = classifier
        self._heading_questions = heading_questions
        self._reranked_config = config.model_copy(
            update={"decisive_margin": config.rerank.decisive_margin}
        )
        self._tenants: dict[str, TenantModels] = {}

    def tenant_models(self, snapshot: TenantSnapshot) -> TenantModels:
        """The tenant's article classifier and coverage model, trained on the first question
        after its knowledge changed (each change makes a new snapshot). The classifier is None
        when reranking is off or the knowledge has no two articles to tell apart; coverage is
        None when it is off or the knowledge has too few articles to rehearse with."""
        cached = self._tenants.get(snapshot.tenant_id)
        if cached is not None and cached.snapshot() is snapshot:
            return cached
        articles = train(snapshot, self.config.rerank) if self.config.rerank.enabled else None
        coverage = None
        if self.config.coverage.enabled and self._heading_questions is not None:
            digits = self.config.mask_digits
            coverage = train_coverage(
                snapshot,
                self.config,
                self._heading_questions,
                lambda text: mask_digit_runs(text, digits),
            )
        models = TenantModels(weakref.ref(snapshot), articles, coverage)
        self._tenants[snapshot.tenant_id] = models
        return models

    def article_classifier(self, snapshot: TenantSnapshot) -> ArticleClassifier | None:
        """The tenant's article classifier (see ``tenant_models``)."""
        return self.tenant_models(snapshot).articles

    def answer(
        self, question: Question, vectors: QuestionVectors, snapshot: TenantSnapshot | None
    ) -> Draft:
        if snapshot is not None and snapshot.tenant_id != question.tenant_id:
            raise ValueError("a question may only be answered from its own tenant's knowledge")
        locale = question.locale or detect_locale(question.text)
        decision = self.classifier.classify(question.text, vectors.intent)
        matches: list[DocumentMatch] = []
        score = 0.0
        covered: float | None = None
        if snapshot is not None:
            language = language_of(locale)
            topic = decision.intent if decision.by_rule else None
            hits = search(
                snapshot,
                vectors.retrieval,
                product_id=question.product_id,
                language=language,
                topic=topic,
                config=self.config,
                limit=self.config.search_depth,
            )
            matches = rank_documents(
                snapshot,
                vectors.retrieval,
                hits,
                language=language,
                topic=topic,
                config=self.config,
            )
            models = self.tenant_models(snapshot)
            text = mask_digit_runs(question.text, self.config.mask_digits)
            # One classifier pass serves both the re-ranking and the coverage evidence.
            probabilities = (
                None
                if models.articles is None or (len(matches) < 2 and models.coverage is None)
                else models.articles.probabilities(vectors.features, text)
            )
            if models.coverage is not None and matches:
                rows = snapshot.searchable_rows(question.product_id)
                covered = models.coverage.probability(
                    models.coverage.evidence.of(
                        vectors,
                        text,
                        language,
                        allowed=None if rows is None else _mask(len(snapshot), rows),
                        articles=probabilities,
                    )
                )
            reranked = None
            if probabilities is not None and len(matches) > 1:
                reranked = rerank(matches, snapshot, probabilities, self.config.rerank.weight)
            if reranked is None:
                score = confidence(
                    matches, snapshot, self.config, language=language, blended=vectors.blended
                )
            else:
                matches = reranked
                score = confidence(
                    matches,
                    snapshot,
                    self._reranked_config,
                    language=language,
                    blended=vectors.blended,
                )
        reason = self._handoff(decision, matches, score, covered)
        if reason is not None and reason is not HandoffReason.NEEDS_ACCOUNT_ACCESS:
            # A not-covered question keeps its nearest article, so the knowledge gap says
            # what the customer landed on instead.
            nearest = matches[0].best if reason is HandoffReason.NOT_COVERED else None
            return Draft(
                None,
                (),
                score,
                decision.intent,
                reason,
                locale,
                decision.injection,
                coverage=covered,
                nearest=nearest,
            )
        cited = self._cited(matches[0])
        text = extract_answer(
            question.text, [hit.passage for hit in cited], self.config.max_answer_chars
        )
        return Draft(
            text,
            cited,
            score,
            decision.intent,
            reason,
            locale,
            decision.injection,
            coverage=covered,
        )

    def _handoff(  # noqa: PLR0911 - one return per hand-off reason, in order of precedence
        self,
        decision: IntentDecision,
        matches: list[DocumentMatch],
        score: float,
        covered: float | None,
    ) -> HandoffReason | None:
        # Intents that hand off on their own must come from a rule: a prototype's nearest
        # neighbour is good enough to label a question, not to take it away from the bot.
        if decision.intent is Intent.HUMAN_REQUEST and decision.by_rule:
            return HandoffReason.CUSTOMER_ASKED
        if decision.angry:
            return HandoffReason.ANGRY_COMPLAINT
        if not matches:
            return HandoffReason.NO_KNOWLEDGE
        if covered is not None and covered < self.config.coverage.min_probability:
            return HandoffReason.NOT_COVERED
        if score < self.config.handoff_below:
            return HandoffReason.LOW_CONFIDENCE
        if decision.by_rule and decision.intent in self.config.account_access_intents:
            return HandoffReason.NEEDS_ACCOUNT_ACCESS
        return None

    def _cited(self, match: DocumentMatch) -> tuple[Hit, ...]:
        """The best document's best passage, then its passages that score within
        ``citation_margin`` of it (a policy split over two passages), best first."""
        top = match.best
        close = [
            hit
            for hit in match.hits[1:]
            if top.rank_score - hit.rank_score < self.config.citation_margin
        ]
        return (top, *close[: self.config.max_citations - 1])


def _mask(size: int, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
    mask = np.zeros(size, dtype=bool)
    mask[rows] = True
    return mask
