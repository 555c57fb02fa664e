"""Intent, anger and injection signals of a customer message, in Chinese and English.

Rules are data (``data/intents.json`` or an operator's file): ordered patterns per intent, then
prototype sentences compared with the question's embedding when no pattern matched. Nothing in
a customer's message can change the rules; the message is only ever matched against them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shopstream.events import Intent
from shopstream_responder.text import fold

FloatMatrix = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class IntentRule:
    intent: Intent
    patterns: tuple[re.Pattern[str], ...]

    def matches(self, text: str) -> bool:
        return any(pattern.search(text) for pattern in self.patterns)


@dataclass(frozen=True)
class IntentRules:
    rules: tuple[IntentRule, ...]
    """In priority order: the first rule that matches decides."""
    prototypes: tuple[tuple[Intent, str], ...]
    prototype_threshold: float
    prototype_margin: float
    anger: tuple[re.Pattern[str], ...]
    shouting_exclamations: int
    shouting_capital_share: float
    injection: tuple[re.Pattern[str], ...]
    revision: str
    """Short hash of the rules' content, part of the answers' lineage."""

    @classmethod
    def from_file(cls, path: Path) -> IntentRules:
        raw = path.read_bytes()
        return cls.from_mapping(json.loads(raw), hashlib.sha256(raw).hexdigest()[:8])

    @classmethod
    def from_mapping(cls, data: dict[str, Any], revision: str = "inline") -> IntentRules:
        intents: dict[str, Any] = data["intents"]
        priority = [Intent(name) for name in data["priority"]]
        unknown = set(intents) - {intent.value for intent in priority}
        if unknown:
            raise ValueError(f"intents {sorted(unknown)} are not listed in 'priority'")
        rules = tuple(
            IntentRule(intent, _compile(intents.get(intent.value, {}).get("patterns", [])))
            for intent in priority
        )
        prototypes = tuple(
            (intent, sentence)
            for intent in priority
            for sentences in intents.get(intent.value, {}).get("prototypes", {}).values()
            for sentence in sentences
        )
        anger = data.get("anger", {})
        return cls(
            rules=rules,
            prototypes=prototypes,
            prototype_threshold=float(data.get("prototype_threshold", 0.88)),
            prototype_margin=float(data.get("prototype_margin", 0.01)),
            anger=_compile(anger.get("patterns", [])),
            shouting_exclamations=int(anger.get("shouting_exclamations", 3)),
            shouting_capital_share=float(anger.get("shouting_capital_share", 0.7)),
            injection=_compile(data.get("injection", {}).get("patterns", [])),
            revision=revision,
        )

    def prototype_texts(self) -> list[str]:
        return [sentence for _, sentence in self.prototypes]


def _compile(patterns: list[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(pattern) for pattern in patterns)


@dataclass(frozen=True, slots=True)
class IntentDecision:
    intent: Intent
    by_rule: bool
    """True when a pattern decided; False for a prototype decision or the fallback ``other``."""
    anger: int
    """Anger signals found: distinct anger patterns, plus one for shouting."""
    injection: bool
    """The message tries to instruct the assistant; counted, never obeyed."""

    @property
    def angry(self) -> bool:
        """An angry complaint: a complaint with an anger signal, or two signals whatever the
        topic (a furious "where is my order?!!!" goes to a person too)."""
        return self.anger >= 2 or (self.anger >= 1 and self.intent is Intent.COMPLAINT)


class IntentClassifier:
    """Rules first, then the nearest prototypes; ``prototype_vectors`` are the encoder's unit
    vectors of ``rules.prototype_texts()`` (None: rules only)."""

    def __init__(self, rules: IntentRules, prototype_vectors: FloatMatrix | None = None) -> None:
        if prototype_vectors is not None and len(prototype_vectors) != len(rules.prototypes):
            raise ValueError("one prototype vector per prototype sentence is needed")
        self.rules = rules
        self._vectors = prototype_vectors
        self._labels = [intent for intent, _ in rules.prototypes]

    def rule_intent(self, text: str) -> Intent | None:
        """The intent the rules alone give a text (a heading, a title), or None."""
        lowered = fold(text)
        return next((rule.intent for rule in self.rules.rules if rule.matches(lowered)), None)

    def classify(self, text: str, vector: npt.NDArray[np.float32] | None = None) -> IntentDecision:
        lowered = fold(text)
        anger = sum(1 for pattern in self.rules.anger if pattern.search(lowered))
        anger += int(self._shouting(text))
        injection = any(pattern.search(lowered) for pattern in self.rules.injection)
        for rule in self.rules.rules:
            if rule.matches(lowered):
                return IntentDecision(rule.intent, by_rule=True, anger=anger, injection=injection)
        return IntentDecision(
            self._nearest(vector), by_rule=False, anger=anger, injection=injection
        )

    def _nearest(self, vector: npt.NDArray[np.float32] | None) -> Intent:
        if vector is None or self._vectors is None or not self._labels:
            return Intent.OTHER
        similarities = self._vectors @ vector
        best: dict[Intent, float] = {}
        for intent, similarity in zip(self._labels, similarities.tolist(), strict=True):
            best[intent] = max(best.get(intent, -1.0), similarity)
        ranked = sorted(best.items(), key=lambda item: item[1], reverse=True)
        top_intent, top = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else -1.0
        if top >= self.rules.prototype_threshold and top - runner_up >= self.rules.prototype_margin:
            return top_intent
        return Intent.OTHER

    def _shouting(self, text: str) -> bool:
        exclamations = max((len(run) for run in re.findall(r"[!！]+", text)), default=0)
        if exclamations >= self.rules.shouting_exclamations:
            return True
        letters = [char for char in text if char.isascii() and char.isalpha()]
        if len(letters) < 12:
            return False
        capitals = sum(1 for char in letters if char.isupper())
        return capitals / len(letters) >= self.rules.shouting_capital_share
