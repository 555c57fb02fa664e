"""The responder's model: one sentence encoder for passages, questions and intent prototypes.

``load()`` loads the encoder from the ``shopstream.models`` registry and embeds the intent
prototypes; ``embed_documents`` serves the knowledge follower and ``predict_batch`` the question
handler. Both may be called from different threads: encoder calls are serialised by a lock.
No Kafka here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from shopstream_responder.answering import Answerer, Draft, Question, QuestionVectors
from shopstream_responder.config import AnsweringConfig, EncoderConfig, RephraseConfig
from shopstream_responder.intents import IntentClassifier, IntentRules
from shopstream_responder.knowledge import Document, PassageVectors, TenantSnapshot
from shopstream_responder.rephrase import Rephraser, RephraseRequest
from shopstream_responder.text import language_of, mask_digit_runs

logger = logging.getLogger("shopstream.responder")

FloatMatrix = npt.NDArray[np.float32]


class Embedder(Protocol):
    """What the responder needs of an encoder (``shopstream.models.TextEncoder`` fits)."""

    model_id: str
    revision: str

    def load(self) -> object: ...

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: Literal["query", "passage"] = "query",
        batch_size: int = 32,
    ) -> FloatMatrix: ...

    def unload(self) -> None: ...


class ResponderModel:
    """Load once; then ``embed_documents`` and ``predict_batch`` from any thread."""

    def __init__(
        self,
        encoder: EncoderConfig,
        answering: AnsweringConfig,
        rules: IntentRules,
        *,
        embedder: Embedder | None = None,
        rephraser: Rephraser | None = None,
        rephrase: RephraseConfig | None = None,
    ) -> None:
        """``rephraser`` replaces the one ``rephrase`` would build (tests pass fakes)."""
        self.encoder_config = encoder
        self.answering_config = answering
        self.rules = rules
        self.model_id = encoder.encoder
        self.model_revision = ""
        self.load_seconds = 0.0
        self._embedder = embedder
        if rephraser is None and rephrase is not None and rephrase.enabled:
            rephraser = Rephraser(rephrase)
        self._rephraser = rephraser
        self._answerer: Answerer | None = None
        self._lock = threading.Lock()

    @property
    def is_loaded(self) -> bool:
        return self._answerer is not None

    def load(self) -> None:
        started = time.perf_counter()
        with self._lock:
            if self._answerer is not None:
                return
            if self._embedder is None:
                # torch is imported only here, so the service module stays importable without it.
                from shopstream.models import TextEncoder, configure_threads  # noqa: PLC0415

                configure_threads(self.encoder_config.threads)
                self._embedder = TextEncoder(
                    self.encoder_config.encoder,
                    device=self.encoder_config.device,
                    max_length=self.encoder_config.max_length,
                )
            self._embedder.load()
            prototypes = self._embedder.encode(
                self.rules.prototype_texts(),
                kind="query",
                batch_size=self.encoder_config.batch_size,
            )
            classifier = IntentClassifier(self.rules, prototypes)
            self.model_id = self._embedder.model_id
            self.model_revision = f"{self._embedder.revision}+rules-{self.rules.revision}"
            if self._rephraser is not None:
                self._rephraser.load()
                self.model_revision += f"+rephrase-{self._rephraser.revision}"
            self._answerer = Answerer(self.answering_config, classifier)
        self.load_seconds = time.perf_counter() - started
        logger.info(
            "responder model %s (%s) ready in %.2f s",
            self.model_id,
            self.model_revision,
            self.load_seconds,
        )

    def embed_documents(self, documents: Sequence[Document]) -> list[PassageVectors]:
        """Vectors of every passage and heading, in one encoder pass for the whole batch."""
        bodies = [chunk.embedding_text() for document in documents for chunk in document.passages]
        headings = sorted({chunk.heading for document in documents for chunk in document.passages})
        vectors = self._encode([*bodies, *headings], "passage")
        heading_rows = {heading: len(bodies) + number for number, heading in enumerate(headings)}
        result: list[PassageVectors] = []
        start = 0
        for document in documents:
            end = start + len(document.passages)
            rows = [heading_rows[chunk.heading] for chunk in document.passages]
            result.append(PassageVectors(vectors[start:end], vectors[rows]))
            start = end
        return result

    def predict_batch(
        self, inputs: Sequence[tuple[Question, TenantSnapshot | None]]
    ) -> list[Draft]:
        """One encoder pass over the batch's questions (both ways), then each is answered from
        the snapshot of its own tenant."""
        answerer = self._answerer
        if answerer is None:
            raise RuntimeError("responder model is not loaded; call load() first")
        digits = self.answering_config.mask_digits
        texts = [mask_digit_runs(question.text, digits) for question, _ in inputs]
        queries = self._encode(texts, "query")
        symmetric = self._encode(texts, "passage")
        drafts = [
            answerer.answer(question, QuestionVectors(query, mirrored), snapshot)
            for (question, snapshot), query, mirrored in zip(
                inputs, queries, symmetric, strict=True
            )
        ]
        if self._rephraser is not None:
            drafts = self._rephrased(self._rephraser, [question for question, _ in inputs], drafts)
        return drafts

    def _rephrased(
        self, rephraser: Rephraser, questions: Sequence[Question], drafts: list[Draft]
    ) -> list[Draft]:
        """Drafts whose answer the generator rephrased with support; the others as they were.
        Hand-offs keep their extractive text: a person reads it, not the customer."""
        chosen = [
            number
            for number, draft in enumerate(drafts)
            if draft.answer is not None
            and draft.handoff is None
            and language_of(draft.locale) in rephraser.config.languages
        ]
        requests = [
            RephraseRequest(
                question=questions[number].text,
                answer=drafts[number].answer or "",
                passages=tuple(hit.passage.text for hit in drafts[number].citations),
            )
            for number in chosen
        ]
        with self._lock:
            replies = rephraser.rephrase(requests)
        result = list(drafts)
        for number, reply in zip(chosen, replies, strict=True):
            if reply is not None:
                result[number] = replace(result[number], answer=reply, rephrased=True)
        return result

    def _encode(self, texts: Sequence[str], kind: Literal["query", "passage"]) -> FloatMatrix:
        with self._lock:
            if self._embedder is None or self._answerer is None:
                raise RuntimeError("responder model is not loaded; call load() first")
            if not texts:
                return np.zeros((0, 0), dtype=np.float32)
            return self._embedder.encode(
                texts, kind=kind, batch_size=self.encoder_config.batch_size
            )

    def unload(self) -> None:
        with self._lock:
            self._answerer = None
            if self._embedder is not None:
                self._embedder.unload()
            if self._rephraser is not None:
                self._rephraser.unload()
