"""The blend's weights, learned per tenant from what its shoppers go to next.

A tenant starts from the configured weights. Before some of its interactions are applied, the
ranker rehearses the request a shopper would have made just then (`Ranker.record`): every
candidate with its evidence per signal. The item the shopper then went to is the answer, and
one step of a conditional-logit model (softmax over the candidates, the way a shopper picks
one item from a list) moves the weights towards the signals that pointed at it. A shop of
click sessions and a shop of long histories each end up with their own mix, without a
setting.

Rehearsals are chosen by counting the tenant's interactions, never by clock or chance, so a
replay of the activity topic (restart, rebalance, `--through-kafka`) learns the same weights.
They are dense while a tenant is new and thin out as its weights settle
(`BlendLearning.next_gap`), which keeps their cost per event small on a busy shop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shopstream_recommender.config import BlendLearning

Matrix = npt.NDArray[np.float64]

ADAGRAD_EPSILON = 1e-8


def head_rows(scores: npt.NDArray[np.float64], size: int) -> npt.NDArray[np.intp]:
    """Rows of the `size` highest `scores`, in no particular order (all rows if fewer)."""
    if len(scores) > size:
        return np.argpartition(-scores, size - 1)[:size]
    return np.arange(len(scores))


class BlendWeights:
    """One tenant's weights per signal, in the order of `names`; a weight configured as 0
    stays 0 (that signal is switched off), every other one is learned and kept >= 0."""

    __slots__ = ("_learnable", "_squared", "answered", "missed", "names", "values", "wait")

    def __init__(self, names: Sequence[str], initial: Sequence[float]) -> None:
        if len(names) != len(initial):
            raise ValueError(f"{len(names)} signals and {len(initial)} weights")
        self.names = tuple(names)
        self.values = np.array(initial, dtype=np.float64)
        self._learnable = self.values > 0
        self._squared = np.zeros_like(self.values)
        self.answered = 0
        """Rehearsals whose answer was among the head of the candidates (each moved the
        weights)."""
        self.missed = 0
        """Rehearsals whose answer was not among the head of the candidates (nothing learned)."""
        self.wait = 0
        """Eligible interactions left before the next rehearsal."""

    def as_dict(self) -> dict[str, float]:
        return {name: float(value) for name, value in zip(self.names, self.values, strict=True)}

    def shares(self) -> dict[str, float]:
        """The weights as shares of their sum (what the mix is, independent of its scale)."""
        total = float(self.values.sum())
        if total <= 0:
            return dict.fromkeys(self.names, 0.0)
        return {
            name: float(value) / total for name, value in zip(self.names, self.values, strict=True)
        }

    def due(self, schedule: BlendLearning) -> bool:
        """Count one eligible interaction; True when it is to be rehearsed."""
        if self.wait > 0:
            self.wait -= 1
            return False
        self.wait = schedule.next_gap(self.answered + self.missed) - 1
        return True

    def learn(
        self, features: Matrix, answer: str, items: Sequence[str], schedule: BlendLearning
    ) -> bool:
        """One Adagrad step up the log-likelihood that the shopper picked `answer` among the
        head of the list, each candidate with probability softmax(features @ weights).

        Only the `schedule.head` best-scored candidates compete: the weights are there to order
        the top of the list, and an answer ranked far down would teach them to lift the whole
        tail (popularity) instead. The steps are taken on the logarithms of the weights, so a
        weight of 20 and one of 0.1 move by the same factor. False when the answer is not in
        the head (nothing is learned)."""
        scores = features @ self.values
        head = head_rows(scores, schedule.head)
        rows = {items[row]: position for position, row in enumerate(head.tolist())}
        position = rows.get(answer)
        if position is None:
            self.missed += 1
            return False
        chosen = features[head]
        scores = scores[head] - scores[head].max()
        chances = np.exp(scores)
        chances /= chances.sum()
        gradient = (chosen[position] - chances @ chosen) * self.values
        gradient[~self._learnable] = 0.0
        self._squared += gradient * gradient
        step = schedule.learning_rate * gradient / np.sqrt(self._squared + ADAGRAD_EPSILON)
        self.values = np.where(self._learnable, self.values * np.exp(step), 0.0)
        self.answered += 1
        return True


class ContextWeights:
    """One tenant's weights for the second stage (`shopstream_recommender.rerank`): the head of
    the blend re-ordered by log(blend score) + features @ values. They start at 0, which keeps
    the blend's order, and are learned additively (a feature may count against an item)."""

    __slots__ = ("_squared", "answered", "names", "values")

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.values = np.zeros(len(self.names), dtype=np.float64)
        self._squared = np.zeros_like(self.values)
        self.answered = 0
        """Rehearsals whose answer was in the head (each moved the weights)."""

    @property
    def learned(self) -> bool:
        """Any weight moved from 0 (before that, the second stage is the blend's order)."""
        return bool(self.values.any())

    def as_dict(self) -> dict[str, float]:
        return {name: float(value) for name, value in zip(self.names, self.values, strict=True)}

    def logits(self, scores: npt.NDArray[np.float64], features: Matrix) -> npt.NDArray[np.float64]:
        """The head's scores in the second stage (in log space: only their order matters)."""
        return np.log(scores) + features @ self.values

    def learn(
        self,
        scores: npt.NDArray[np.float64],
        features: Matrix,
        answer: int,
        learning_rate: float,
    ) -> None:
        """One Adagrad step up the log-likelihood that the shopper picked row `answer` of the
        head, each row with probability softmax(`logits`)."""
        logits = self.logits(scores, features)
        chances = np.exp(logits - logits.max())
        chances /= chances.sum()
        gradient = features[answer] - chances @ features
        self._squared += gradient * gradient
        self.values += learning_rate * gradient / np.sqrt(self._squared + ADAGRAD_EPSILON)
        self.answered += 1
