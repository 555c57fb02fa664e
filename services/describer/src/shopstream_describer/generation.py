"""One call to a generator: what the pipeline asks and every generator answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shopstream_describer.prompts import ChatPrompt


@dataclass(frozen=True)
class GenerationRequest:
    prompts: Sequence[ChatPrompt]
    """One completion is wanted per prompt, in this order."""
    attempt: int
    """1 on the first try; a later attempt must decode differently (sampling)."""
    max_new_tokens: int
    avoid: Sequence[Sequence[str]] | None = None
    """Per prompt, phrases to steer the decoding away from (None: nothing to avoid)."""

    def subset(self, positions: Sequence[int]) -> GenerationRequest:
        """The same request for the prompts at `positions` only (one generator's share)."""
        return GenerationRequest(
            [self.prompts[position] for position in positions],
            attempt=self.attempt,
            max_new_tokens=self.max_new_tokens,
            avoid=None if self.avoid is None else [self.avoid[position] for position in positions],
        )
