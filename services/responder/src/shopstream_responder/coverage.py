"""Does a shop's knowledge cover a question at all? A per-tenant model, learned by rehearsal.

"Which article is best" (retrieval, the article classifier, ``answering.confidence``) always
has an answer: a question about something the shop never wrote down still lands on its nearest
article, often with a confident score ("set up a shipping address" on the article about
changing one). Coverage is a decision of its own, learned per tenant from the tenant's
knowledge alone, so it is retrained whenever that knowledge changes and can never see another
shop's:

* **Rehearsals.** An FAQ article's headings are questions the shop knows the answer to. Fold
  by fold, one heading of every article is held out and asked: the rest of its article still
  covers it (label covered). Fold by fold, whole articles are held out and their headings
  asked: nothing covers them any more (label not covered). The article classifier is retrained
  without the held-out rows each time, so it has never seen the question it is asked.
  A document under one heading only (a policy under its title; many help centres are written
  so) is asked its title twice: seen without its heading (its passages still cover it) and
  held out whole. That covered rehearsal is easier than a customer's paraphrase, because a
  passage's vector was embedded with its heading, so it leans towards "not covered": on the
  Chinese FAQ (titles over prose) it cut the uncovered questions answered from 47.5 % to
  15.0 % and the covered ones from 90.0 % to 77.5 % (README).
* **Evidence** (``EVIDENCE``), the same for a rehearsal and a customer's question: how close
  the best passage and the best heading are (on the scale ``answering.confidence`` uses for the
  question's language, so one model serves a shop that writes in Chinese and English), the
  share of the question's words that its nearest document uses, and how sure the article
  classifier is (one minus its normalised entropy: spread over several articles when none
  is about the question).
* **Model.** A logistic regression on the rehearsals' evidence, both labels weighted equally,
  gives the probability that the knowledge covers a question; the answerer hands questions
  under ``coverage.min_probability`` off as ``not_covered``.

Measured on the Bitext development file with 10 intents left out of the knowledge and on the
Chinese FAQ (README, responder quality). Pure numpy; the rehearsals of a 17-article shop take
about 0.5 s on two busy cores, once per knowledge change.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shopstream_responder.config import AnsweringConfig
from shopstream_responder.encoding import QuestionVectors
from shopstream_responder.knowledge import HEADING_SHARE, TenantSnapshot
from shopstream_responder.reranker import train
from shopstream_responder.text import overlap_terms

FloatVector = npt.NDArray[np.float64]
EVIDENCE = ("closeness", "heading_closeness", "term_overlap", "classifier_certainty")
NEWTON_STEPS = 25
HeadingQuestions = Callable[[npt.NDArray[np.float32], Sequence[str]], list[QuestionVectors]]
"""Stored heading vectors and their languages to the vectors of the same texts asked as
questions (``encoding.BlendedEncoder.heading_questions``)."""


def score_range(config: AnsweringConfig, *, language: str, blended: bool) -> tuple[float, float]:
    """Floor and ceiling of closeness for a question (see ``answering.confidence``)."""
    if blended:
        return config.english_score_floor, config.english_score_ceiling
    offset = config.chinese_score_offset if language == "zh" else 0.0
    return config.score_floor + offset, config.score_ceiling + offset


class CoverageEvidence:
    """Computes ``EVIDENCE`` for questions against one snapshot (rows may be held out).

    It holds the snapshot weakly: a tenant's models are cached next to the snapshot they were
    learned from, and must not keep a replaced snapshot's vectors alive."""

    def __init__(self, snapshot: TenantSnapshot, config: AnsweringConfig) -> None:
        self._snapshot = weakref.ref(snapshot)
        self.config = config
        self._row_terms: dict[tuple[int, bool], frozenset[str]] = {}
        """Content terms of a passage, with its heading or without, filled as they are used."""
        self._starts = snapshot.document_starts
        self._document_of_row = (
            np.searchsorted(self._starts, np.arange(len(snapshot)), side="right") - 1
        )

    def of(
        self,
        vectors: QuestionVectors,
        text: str,
        language: str,
        *,
        allowed: npt.NDArray[np.bool_] | None,
        articles: Mapping[int, float] | None,
        hidden: npt.NDArray[np.bool_] | None = None,
    ) -> FloatVector:
        """The evidence for one question; ``allowed`` masks the rows it may use (None: all),
        ``articles`` are the article classifier's probabilities for it (None: no classifier).
        ``hidden`` rows are seen without their heading: its similarity is replaced by the
        passage's and its words do not count (a rehearsal that asks a document's only heading
        must not find that heading verbatim)."""
        snapshot, config = self.snapshot, self.config
        body_cosines = snapshot.vectors.bodies @ vectors.retrieval
        heading_cosines = snapshot.vectors.headings @ vectors.retrieval
        if hidden is not None:
            heading_cosines = np.where(hidden, body_cosines, heading_cosines)
        cosines = (1 - HEADING_SHARE) * body_cosines + HEADING_SHARE * heading_cosines
        if allowed is not None:
            cosines = np.where(allowed, cosines, -np.inf)
            heading_cosines = np.where(allowed, heading_cosines, -np.inf)
        best_row = int(np.argmax(cosines))
        floor, ceiling = score_range(config, language=language, blended=vectors.blended)
        span = ceiling - floor
        document = int(self._document_of_row[best_row])
        end = self._starts[document + 1] if document + 1 < len(self._starts) else len(snapshot)
        document_terms: set[str] = set()
        for row in range(int(self._starts[document]), int(end)):
            if allowed is None or allowed[row]:
                document_terms |= self._terms(row, heading=hidden is None or not hidden[row])
        terms = overlap_terms(text)
        overlap = len(terms & document_terms) / len(terms) if terms else 0.0
        return np.asarray(
            [
                (float(cosines[best_row]) - floor) / span,
                (float(heading_cosines.max()) - floor) / span,
                overlap,
                _certainty(articles),
            ]
        )

    @property
    def snapshot(self) -> TenantSnapshot:
        snapshot = self._snapshot()
        if snapshot is None:
            raise RuntimeError("the snapshot this coverage evidence was built for is gone")
        return snapshot

    def _terms(self, row: int, *, heading: bool) -> frozenset[str]:
        terms = self._row_terms.get((row, heading))
        if terms is None:
            passage = self.snapshot.passages[row]
            text = f"{passage.heading} {passage.text}" if heading else passage.text
            terms = self._row_terms[(row, heading)] = frozenset(overlap_terms(text))
        return terms


def _certainty(articles: Mapping[int, float] | None) -> float:
    """One minus the classifier's entropy over its articles divided by its maximum; 0 without
    a classifier."""
    if articles is None:
        return 0.0
    probabilities = np.fromiter(articles.values(), float)
    entropy = -float(np.sum(probabilities * np.log(np.maximum(probabilities, 1e-12))))
    return 1.0 - entropy / math.log(len(probabilities))


@dataclass(frozen=True)
class CoverageModel:
    """The probability that a tenant's knowledge covers a question, from its evidence."""

    evidence: CoverageEvidence
    mean: FloatVector
    scale: FloatVector
    weights: FloatVector
    bias: float
    rehearsals: int

    def probability(self, evidence: FloatVector) -> float:
        logit = float(((evidence - self.mean) / self.scale) @ self.weights) + self.bias
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))


@dataclass(frozen=True, slots=True)
class _Rehearsal:
    row: int
    covered: bool


def train_coverage(
    snapshot: TenantSnapshot,
    config: AnsweringConfig,
    heading_questions: HeadingQuestions,
    texts: Callable[[str], str] = lambda text: text,
) -> CoverageModel | None:
    """The tenant's coverage model, or None when its knowledge has too few general documents
    to rehearse with (``coverage.min_articles``): then nothing is handed off as
    ``not_covered``. ``texts`` prepares a question's text for the classifier as the answerer
    does (digit masking).

    FAQ articles (``rerank.min_headings`` headings or more) rehearse as the module says.
    A document under one heading only (a policy under its title) has no other heading to
    cover its own: it is asked its heading once seen without that heading (its passages
    still cover it) and once held out whole (nothing covers it)."""
    coverage = config.coverage
    documents = _documents(snapshot)
    articles = [headings for headings in documents if len(headings) >= config.rerank.min_headings]
    titled = [next(iter(headings.values())) for headings in documents if len(headings) == 1]
    if len(articles) + len(titled) < coverage.min_articles:
        return None
    evidence = CoverageEvidence(snapshot, config)
    folds = min(coverage.folds, len(articles))
    rows = [row for headings in articles for row in headings.values()] + titled
    questions = dict(
        zip(
            rows,
            heading_questions(snapshot.vectors.headings[rows], list(snapshot.languages[rows])),
            strict=True,
        )
    )
    features: list[FloatVector] = []
    labels: list[bool] = []
    # Every rehearsal scores the question against the whole snapshot; a big FAQ rehearses with
    # an evenly spaced share of its headings, so training stays bounded.
    chosen = set(rows[:: max(1, math.ceil(len(rows) / coverage.max_rehearsals))])
    for fold in range(folds):
        for planned, held_out in (
            _covered_fold(snapshot, articles, fold, folds),
            _uncovered_fold(snapshot, articles, fold, folds),
        ):
            rehearsals = [rehearsal for rehearsal in planned if rehearsal.row in chosen]
            if not rehearsals:
                continue
            classifier = train(snapshot, config.rerank, excluded=frozenset(held_out))
            allowed = np.ones(len(snapshot), dtype=bool)
            allowed[list(held_out)] = False
            for rehearsal in rehearsals:
                passage = snapshot.passages[rehearsal.row]
                question, text = questions[rehearsal.row], texts(passage.heading)
                features.append(
                    evidence.of(
                        question,
                        text,
                        passage.language,
                        allowed=allowed,
                        articles=None
                        if classifier is None
                        else classifier.probabilities(question.features, text),
                    )
                )
                labels.append(rehearsal.covered)
    titled = [row for row in titled if row in chosen]
    if titled:
        classifier = train(snapshot, config.rerank)
        for row in titled:
            passage = snapshot.passages[row]
            question, text = questions[row], texts(passage.heading)
            probabilities = (
                None if classifier is None else classifier.probabilities(question.features, text)
            )
            own = np.zeros(len(snapshot), dtype=bool)
            own[list(snapshot.document_rows(row))] = True
            for covered in (True, False):
                features.append(
                    evidence.of(
                        question,
                        text,
                        passage.language,
                        allowed=None if covered else ~own,
                        articles=probabilities,
                        hidden=own if covered else None,
                    )
                )
                labels.append(covered)
    positives = sum(labels)
    if min(positives, len(labels) - positives) < coverage.min_rehearsals:
        return None
    matrix = np.vstack(features)
    mean = matrix.mean(axis=0)
    scale = np.maximum(matrix.std(axis=0), 1e-6)
    weights, bias = _logistic_regression(
        (matrix - mean) / scale, np.asarray(labels, dtype=np.float64), coverage.l2
    )
    return CoverageModel(evidence, mean, scale, weights, bias, rehearsals=len(labels))


def _documents(snapshot: TenantSnapshot) -> list[dict[str, int]]:
    """Per general (not product) document, in row order, each heading to its first row."""
    by_document: dict[int, dict[str, int]] = {}
    for row in snapshot.general_rows.tolist():
        heading = snapshot.passages[row].heading
        if heading:
            start = snapshot.document_rows(row).start
            by_document.setdefault(start, {}).setdefault(heading, row)
    return [headings for _, headings in sorted(by_document.items())]


def _heading_rows(snapshot: TenantSnapshot, row: int) -> list[int]:
    """Every row of ``row``'s document under the same heading (a long answer spans several)."""
    heading = snapshot.passages[row].heading
    return [
        other
        for other in snapshot.document_rows(row)
        if snapshot.passages[other].heading == heading
    ]


def _covered_fold(
    snapshot: TenantSnapshot, articles: list[dict[str, int]], fold: int, folds: int
) -> tuple[list[_Rehearsal], set[int]]:
    """Heading number ``fold`` (and ``fold + folds``, ...) of each article that keeps at least
    two headings without them, held out and asked."""
    rehearsals: list[_Rehearsal] = []
    held_out: set[int] = set()
    for headings in articles:
        rows = list(headings.values())
        chosen = rows[fold::folds]
        if not chosen or len(rows) - len(chosen) < 2:
            continue
        for row in chosen:
            rehearsals.append(_Rehearsal(row, covered=True))
            held_out.update(_heading_rows(snapshot, row))
    return rehearsals, held_out


def _uncovered_fold(
    snapshot: TenantSnapshot, articles: list[dict[str, int]], fold: int, folds: int
) -> tuple[list[_Rehearsal], set[int]]:
    """Articles number ``fold``, ``fold + folds``, ... held out whole, their headings asked."""
    rehearsals: list[_Rehearsal] = []
    held_out: set[int] = set()
    for headings in articles[fold::folds]:
        first = next(iter(headings.values()))
        held_out.update(snapshot.document_rows(first))
        rehearsals += [_Rehearsal(row, covered=False) for row in headings.values()]
    return rehearsals, held_out


def _logistic_regression(
    features: npt.NDArray[np.float64], labels: FloatVector, l2: float
) -> tuple[FloatVector, float]:
    """Weights and bias of an L2-penalised logistic regression by Newton's method, each label
    weighted to half the total (the rehearsals' label balance is an artefact of their
    construction, not a prior)."""
    positives = labels.sum()
    weights_per_example = np.where(labels > 0, 0.5 / positives, 0.5 / (labels.size - positives))
    design = np.hstack([features, np.ones((features.shape[0], 1))])
    penalty = np.diag([l2] * features.shape[1] + [0.0])
    theta = np.zeros(design.shape[1])
    for _ in range(NEWTON_STEPS):
        probabilities = 1.0 / (1.0 + np.exp(-np.clip(design @ theta, -60, 60)))
        gradient = design.T @ (weights_per_example * (probabilities - labels)) + penalty @ theta
        curvature = weights_per_example * probabilities * (1 - probabilities)
        hessian = design.T @ (design * curvature[:, None]) + penalty + 1e-9 * np.eye(theta.size)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return theta[:-1], float(theta[-1])
