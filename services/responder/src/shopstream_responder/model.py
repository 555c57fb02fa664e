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

import numpy as np

from shopstream_responder.answering import Answerer, Draft, Question
from shopstream_responder.encoding import BlendedEncoder, Embedder, QuestionVectors

__all__ = ["Embedder", "ResponderModel"]
from shopstream_responder.config import AnsweringConfig, EncoderConfig, RephraseConfig
from shopstream_responder.intents import IntentClassifier, IntentRules
from shopstream_responder.knowledge import Document, PassageVectors, TenantSnapshot
from shopstream_responder.rephrase import Rephraser, RephraseRequest
from shopstream_responder.text import detect_locale, language_of, mask_digit_runs

logger = logging.getLogger("shopstream.responder")


class ResponderModel:
    """Load once; then ``embed_documents`` and ``predict_batch`` from any thread."""

    def __init__(
        self,
        encoder: EncoderConfig,
        answering: AnsweringConfig,
        rules: IntentRules,
        *,
        embedder: Embedder | None = None,
        english_embedder: Embedder | None = None,
        rephraser: Rephraser | None = None,
        rephrase: RephraseConfig | None = None,
    ) -> None:
        """``embedder``, ``english_embedder`` and ``rephraser`` replace the ones the configs
        would build (tests pass fakes); the English encoder is used only when
        ``encoder.english_encoder`` names one."""
        self.encoder_config = encoder
        self.answering_config = answering
        self.rules = rules
        self.model_id = encoder.encoder
        self.model_revision = ""
        self.load_seconds = 0.0
        self._embedder = embedder
        self._english_embedder = english_embedder
        self._encoder: BlendedEncoder | None = None
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
            config = self.encoder_config
            if self._embedder is None:
                self._embedder = _registry_encoder(config.encoder, config)
            english = None
            if config.english_encoder is not None:
                english = self._english_embedder or _registry_encoder(
                    config.english_encoder, config
                )
                english.load()
            self._embedder.load()
            encoder = BlendedEncoder(
                self._embedder,
                english,
                english_weight=config.english_weight,
                batch_size=config.batch_size,
            )
            classifier = IntentClassifier(
                self.rules, encoder.prototypes(self.rules.prototype_texts())
            )
            self._encoder = encoder
            self.model_id = self._embedder.model_id
            self.model_revision = f"{encoder.revision}+rules-{self.rules.revision}"
            if self._rephraser is not None:
                self._rephraser.load()
                self.model_revision += f"+rephrase-{self._rephraser.revision}"
            self._answerer = Answerer(
                self.answering_config, classifier, heading_questions=encoder.heading_questions
            )
        self.load_seconds = time.perf_counter() - started
        logger.info(
            "responder model %s (%s) ready in %.2f s",
            self.model_id,
            self.model_revision,
            self.load_seconds,
        )

    def embed_documents(self, documents: Sequence[Document]) -> list[PassageVectors]:
        """Vectors of every passage (as a passage) and heading (as a query: headings are the
        questions an FAQ answers, and are compared with the customer's question), in two
        encoder passes for the whole batch."""
        bodies = [chunk.embedding_text() for document in documents for chunk in document.passages]
        headings = sorted({chunk.heading for document in documents for chunk in document.passages})
        with self._lock:
            encoder = self._loaded_encoder()
            vectors = np.concatenate(
                [encoder.documents(bodies, "passage"), encoder.documents(headings, "query")]
            )
        heading_rows = {heading: len(bodies) + number for number, heading in enumerate(headings)}
        result: list[PassageVectors] = []
        start = 0
        for document in documents:
            end = start + len(document.passages)
            rows = [heading_rows[chunk.heading] for chunk in document.passages]
            result.append(PassageVectors(vectors[start:end], vectors[rows]))
            start = end
        return result

    def embed_questions(self, questions: Sequence[Question]) -> list[QuestionVectors]:
        """The questions' vectors, in one pass per encoder; digit runs are masked first."""
        digits = self.answering_config.mask_digits
        texts = [mask_digit_runs(question.text, digits) for question in questions]
        languages = [
            language_of(question.locale or detect_locale(question.text)) for question in questions
        ]
        with self._lock:
            return self._loaded_encoder().questions(texts, languages)

    def predict_batch(
        self, inputs: Sequence[tuple[Question, TenantSnapshot | None]]
    ) -> list[Draft]:
        """One encoder pass over the batch's questions, then each is answered from the
        snapshot of its own tenant."""
        answerer = self._answerer
        if answerer is None:
            raise RuntimeError("responder model is not loaded; call load() first")
        vectors = self.embed_questions([question for question, _ in inputs])
        drafts = [
            answerer.answer(question, question_vectors, snapshot)
            for (question, snapshot), question_vectors in zip(inputs, vectors, strict=True)
        ]
        if self._rephraser is not None:
            drafts = self._rephrased(self._rephraser, [question for question, _ in inputs], drafts)
        return drafts

    def _rephrased(
        self, rephraser: Rephraser, questions: Sequence[Question], drafts: list[Draft]
    ) -> list[Draft]:
        """Drafts whose answer the generator rephrased with support; the others as they were.
        Hand-offs keep their extractive text: a person reads it, not the customer. Both the
        customer's language and the answer's (a Chinese question may be answered from English
        passages) must be among ``languages``; the reply is asked for in the answer's, the
        only one the support check can compare with the passages."""
        languages = rephraser.config.languages
        chosen: list[tuple[int, str]] = []
        for number, draft in enumerate(drafts):
            if draft.answer is None or draft.handoff is not None:
                continue
            answer_language = detect_locale(draft.answer)
            if language_of(draft.locale) in languages and answer_language in languages:
                chosen.append((number, answer_language))
        requests = [
            RephraseRequest(
                question=questions[number].text,
                answer=drafts[number].answer or "",
                passages=tuple(hit.passage.text for hit in drafts[number].citations),
                language=language,
            )
            for number, language in chosen
        ]
        with self._lock:
            replies = rephraser.rephrase(requests)
        result = list(drafts)
        for (number, _), reply in zip(chosen, replies, strict=True):
            if reply is not None:
                result[number] = replace(result[number], answer=reply, rephrased=True)
            else:
                result[number] = replace(result[number], rephrase_rejected=True)
        return result

    def _loaded_encoder(self) -> BlendedEncoder:
        if self._encoder is None or self._answerer is None:
            raise RuntimeError("responder model is not loaded; call load() first")
        return self._encoder

    def unload(self) -> None:
        with self._lock:
            self._answerer = None
            if self._encoder is not None and self._encoder.english is not None:
                self._encoder.english.unload()
            self._encoder = None
            if self._embedder is not None:
                self._embedder.unload()
            if self._rephraser is not None:
                self._rephraser.unload()


def _registry_encoder(name: str, config: EncoderConfig) -> Embedder:
    # torch is imported only here, so the service module stays importable without it.
    from shopstream.models import TextEncoder  # noqa: PLC0415

    return TextEncoder(name, max_length=config.max_length, **config.runtime_options())
