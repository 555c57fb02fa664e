"""Settings of the responder service (env prefix ``RESPONDER_``, nested fields joined by ``__``).

Examples: ``RESPONDER_MODEL__ENCODER=/models/bge-m3``, ``RESPONDER_ANSWERING__HANDOFF_BELOW=0.5``,
``RESPONDER_ANSWERING__ACCOUNT_ACCESS_INTENTS='[]'`` (an order system answers order status),
``RESPONDER_INTENT_RULES=/etc/shopstream/intents.json``, ``RESPONDER_REPHRASE__ENABLED=true``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shopstream.events import Intent
from shopstream.models.names import DEFAULT_ENCODER, DEFAULT_GENERATOR, ENGLISH_ENCODER
from shopstream.models.settings import ModelPlacementSettings, ModelRuntimeSettings
from shopstream.settings import ServiceSettings

DEFAULT_INTENT_RULES = Path(
    str(resources.files("shopstream_responder").joinpath("data", "intents.json"))
)


class EncoderConfig(ModelRuntimeSettings):
    """The sentence encoders that embed passages and questions into one space; ``device``,
    ``threads`` and ``batch_size`` (texts per encoder forward pass) from
    ``ModelRuntimeSettings``."""

    @field_validator("english_encoder", mode="before")
    @classmethod
    def _none_turns_off(cls, value: object) -> object:
        # An empty environment variable is ignored by the settings, so "none" says "off".
        return None if isinstance(value, str) and value.strip().lower() in {"", "none"} else value

    encoder: str = DEFAULT_ENCODER
    """Registry name, local directory or Hub id; it must embed the customers' languages (the
    default covers Chinese and English, and Chinese questions find English passages)."""
    max_length: int = Field(default=256, ge=16, le=512)
    """Longest tokenised text handed to the encoder; passages are chunked well below it."""
    english_encoder: str | None = ENGLISH_ENCODER
    """A second, English encoder blended into the scores of English questions
    (``shopstream_responder.encoding``); ``none`` turns it off."""
    english_weight: float = Field(default=0.5, gt=0.0, lt=1.0)
    """Share of the English encoder's cosine in an English question's scores."""


class ChunkingConfig(BaseModel):
    """How documents are cut into passages: whole sentences, grouped by paragraph."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_chars: int = Field(default=480, ge=40, le=4_000)
    """Longest passage in characters (a Chinese character counts as two, roughly its token
    cost); a longer paragraph is split between sentences."""
    min_chars: int = Field(default=40, ge=0, le=1_000)
    """Shorter paragraphs (headings, one-liners) are joined to the next one."""
    max_passages_per_doc: int = Field(default=200, ge=1, le=10_000)
    """A document beyond this many passages is truncated (and the truncation logged), so one
    huge upload cannot hold the index or the encoder hostage."""


class RerankConfig(BaseModel):
    """A per-tenant classifier of the tenant's articles, trained on their headings, whose
    probabilities are added to the retrieval scores (``shopstream_responder.reranker``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    """On the ``dev`` split it answered 4.9 points more questions at 3.2 points higher
    accuracy (default threshold); see the README's responder quality section."""
    weight: float = Field(default=1.0, ge=0.0, le=100.0)
    """Added to an article's retrieval score times its probability."""
    decisive_margin: float = Field(default=0.5, gt=0.0, le=100.0)
    """Replaces ``answering.decisive_margin`` when the classifier ranks: the lead of the
    blended scores (probabilities included) at which distinctness reaches 1."""
    lexical_weight: float = Field(default=0.3, ge=0.0, le=10.0)
    """Scale of the hashed word n-grams next to the sentence vector (unit length)."""
    l2: float = Field(default=1e-4, gt=0.0, le=10.0)
    """L2 penalty of the logistic regression."""
    passage_weight: float = Field(default=0.3, ge=0.0, le=10.0)
    """Weight of each of an article's passages (its answers) as a training example, next to
    1 for each heading; 0 trains on headings alone."""
    min_headings: int = Field(default=2, ge=1, le=100)
    """A document needs this many distinct headings to be one of the classifier's articles.
    Documents that are not (policies under their title, product facts) keep their retrieval
    score, and a question whose best two documents are not both articles is ranked by
    retrieval alone."""
    max_headings: int = Field(default=400, ge=2, le=5_000)
    """A tenant with more headings than this ranks by retrieval alone (training time grows
    with the square of the headings times the articles)."""


class CoverageConfig(BaseModel):
    """Whether the shop's knowledge covers a question at all: a per-tenant model trained by
    rehearsing with the shop's own FAQ headings (``shopstream_responder.coverage``). A
    question under ``min_probability`` is handed off as ``not_covered``: a knowledge gap,
    published on ``topics.knowledge_gaps`` so the shop learns which articles to write."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    min_probability: float = Field(default=0.3, ge=0.0, le=1.0)
    """Coverage probability under which a question is handed off as ``not_covered``. On the
    Bitext file with 10 intents left out (mean of seeds 13-15) 0.3 hands off 72 % of the
    uncovered questions (27.6 % still answered, 53.1 % without coverage) and keeps 84.8 % of
    the covered ones answered (89.1 % without); with every intent covered (``--split test``)
    it keeps 81.1 % answered at 91.2 % correct (85.1 % at 90.7 % without). 0.4 would answer
    21.1 % of the uncovered but break the 80 % answered bar with full knowledge (76.7 %)."""
    min_articles: int = Field(default=4, ge=2, le=10_000)
    """General documents (FAQ articles or titled policies; product facts do not count) a shop
    needs before coverage is learned; with fewer, nothing is handed off as ``not_covered``."""
    min_rehearsals: int = Field(default=8, ge=1, le=10_000)
    """Rehearsals of each label (covered, not covered) needed before the model is trusted;
    a few examples make a coin toss of every question."""
    folds: int = Field(default=5, ge=2, le=50)
    """Rehearsal folds of each kind; each retrains the article classifier once."""
    max_rehearsals: int = Field(default=400, ge=10, le=100_000)
    """Headings rehearsed with at most (each twice, covered and not); a shop with more
    rehearses with an evenly spaced share, so a knowledge change costs a bounded time."""
    l2: float = Field(default=0.1, gt=0.0, le=100.0)
    """L2 penalty of the logistic regression (on standardised evidence)."""


class AnsweringConfig(BaseModel):
    """When to answer, what to cite, and when to pass the conversation to a person.

    Documents are ranked by the mean score of their best ``document_headings`` headings.
    Confidence is the weaker of closeness (the best passage's score between ``score_floor``
    and ``score_ceiling``) and distinctness (the best document's lead over the next one, up
    to ``decisive_margin``); see ``shopstream_responder.answering.confidence``.
    The defaults suit ``multilingual-e5-small``; another encoder needs its own floor and
    ceiling (``shopstream eval responder`` prints accuracy per confidence threshold).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    score_floor: float = Field(default=0.83, ge=-1.0, le=1.0)
    """Score at which closeness is 0: where the encoder puts unrelated texts."""
    score_ceiling: float = Field(default=0.89, ge=-1.0, le=1.0)
    """Score at which closeness reaches 1."""
    chinese_score_offset: float = Field(default=0.02, ge=-0.5, le=0.5)
    """Added to floor and ceiling for Chinese questions: the default encoder scores Chinese
    pairs higher across the board (unrelated Chinese texts land near 0.85, English near 0.82)."""
    english_score_floor: float = Field(default=0.55, ge=-1.0, le=1.0)
    """``score_floor`` for English questions when the English encoder is blended in: the
    blend spreads scores wider (unrelated English texts land near ...)."""
    english_score_ceiling: float = Field(default=0.65, ge=-1.0, le=1.0)
    """``score_ceiling`` for English questions when the English encoder is blended in."""
    decisive_margin: float = Field(default=0.02, gt=0.0, le=1.0)
    """Lead over the best other document at which distinctness reaches 1."""
    document_headings: int = Field(default=3, ge=1, le=50)
    """A document scores by the mean of its this-many best headings (FAQ questions; a policy
    has one, its title): several phrasings of the customer's question in one article are
    stronger evidence than one."""
    search_depth: int = Field(default=20, ge=1, le=1_000)
    """Best passages retrieved per question; their documents are the candidates ranked."""
    duplicate_similarity: float = Field(default=0.97, ge=0.0, le=1.0)
    """A passage of another document this similar to the best one is a copy (the same FAQ
    filed twice), not a rival, and does not lower the confidence."""
    handoff_below: float = Field(default=0.25, ge=0.0, le=1.0)
    """Confidence under which the question is handed off (reason ``low_confidence``)
    instead of answered."""
    same_language_bonus: float = Field(default=0.01, ge=0.0, le=0.2)
    """Added to the score of passages in the customer's language, so a shop that writes its
    policy in Chinese and English answers each customer in their own language."""
    topic_mismatch_penalty: float = Field(default=0.02, ge=0.0, le=1.0)
    """Subtracted from passages whose heading the intent rules put under another intent than
    the question (a refund question against the "Delivery times" article)."""
    max_answer_chars: int = Field(default=600, ge=40, le=4_000)
    """Longest extractive answer; a longer passage is cut down to its sentences that overlap
    the question most, kept in their original order."""
    max_citations: int = Field(default=3, ge=1, le=20)
    """Passages an answer may draw on and cite."""
    citation_margin: float = Field(default=0.01, ge=0.0, le=1.0)
    """Passages of the best passage's document scoring within this of it join the answer."""
    mask_digits: int = Field(default=5, ge=0, le=64)
    """Runs of at least this many digits (order, phone, tracking numbers) are blanked out of
    a question before it is embedded: they say nothing about its topic. 0 keeps them."""
    account_access_intents: frozenset[Intent] = frozenset({Intent.ORDER_STATUS})
    """Intents that need the customer's account or order record, which the knowledge base
    does not have: these are answered from the knowledge (how to track an order) and handed
    off (reason ``needs_account_access``). Empty when an order system answers them."""

    rerank: RerankConfig = RerankConfig()
    """The per-tenant article classifier blended into ranking and confidence."""
    coverage: CoverageConfig = CoverageConfig()
    """The per-tenant decision whether the knowledge covers a question at all."""

    @model_validator(mode="after")
    def _ceiling_above_floor(self) -> AnsweringConfig:
        if self.score_ceiling <= self.score_floor:
            raise ValueError("answering.score_ceiling must be above answering.score_floor")
        if self.english_score_ceiling <= self.english_score_floor:
            raise ValueError(
                "answering.english_score_ceiling must be above answering.english_score_floor"
            )
        return self


class RephraseConfig(ModelPlacementSettings):
    """A generator that may rephrase the extractive answer; its reply is used only when every
    sentence is supported by the retrieved passages (``shopstream_responder.rephrase``). It
    runs on ``device`` in the encoder's thread pool (``model.threads``)."""

    enabled: bool = False
    """Off by default: the extractive answer is already grounded, and a CPU cannot keep up.
    The default generator (Qwen2.5-Coder-0.5B, Chinese and English) took 1.37 s per English
    and 0.72 s per Chinese answer (batch 8, 96 new tokens, 2 threads, 2-core CPU at load
    average ~1; ``bench/rephrase_bench.py``), SmolLM2-135M 0.59 s per English answer, so a
    replica answering 55-72 questions/s extractively would answer about one a second; on the
    same machine at load average 5-6 it was ten times slower. The check kept 26 of 32 Qwen
    replies (4 cut off at 96 tokens, 2 echoed the question), 18 of them the answer copied
    whole or in part, and 1 of 16 SmolLM2 ones. Meant for a GPU (not measured)."""
    generator: str = DEFAULT_GENERATOR
    """Registry name, local directory or Hub id of an instruction-tuned causal LM
    (``smollm2-135m-instruct``: English only, with ``languages=["en"]``)."""
    languages: frozenset[str] = frozenset({"en", "zh"})
    """Languages the generator writes well (prompts exist for ``en`` and ``zh``); an answer
    whose question or text is in another language stays extractive."""
    max_new_tokens: int = Field(default=96, ge=8, le=1_024)
    batch_size: int = Field(default=8, ge=1, le=256)
    """Prompts per forward pass."""
    min_term_share: float = Field(default=0.8, ge=0.0, le=1.0)
    """Share of a generated sentence's content terms that must occur in the passages (its
    numbers must all occur); below it the sentence is unsupported and the reply discarded."""


class ResponderSettings(ServiceSettings):
    """Settings of the responder; topics ``topics.questions`` (consumed by the group),
    ``topics.knowledge`` and ``topics.products`` (read in full by every replica) and
    ``topics.answers`` (out), from the shared topic registry."""

    model_config = SettingsConfigDict(env_prefix="RESPONDER_")

    model: EncoderConfig = EncoderConfig()
    chunking: ChunkingConfig = ChunkingConfig()
    answering: AnsweringConfig = AnsweringConfig()
    rephrase: RephraseConfig = RephraseConfig()
    intent_rules: Path = DEFAULT_INTENT_RULES
    """Keyword and pattern rules plus prototype sentences per intent (zh and en), anger and
    hand-off phrases; point it at an operator's own JSON file to change them without a
    release."""
    product_facts: bool = True
    """Index the catalogue's products as facts; a question naming a product id searches that
    product's facts and the shop's general knowledge only."""
    catch_up_timeout_seconds: float = Field(default=900.0, gt=0)
    """Longest the start-up may take to read and embed the knowledge and catalogue topics to
    their end before questions are consumed; the service fails to start after that."""
