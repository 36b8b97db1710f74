"""``tune --budget``: which prompt variants there is time to score, predicted from the passes already made.

A pass's cost is counted in units: a direct pass decodes each text's tokens once (its candidates
share a trie and are read from about one row each); a channel pass decodes each text once per
verbalization and reads a logit row for every one of those tokens. Seconds per unit are measured
per direction on the passes made (a first channel pass is predicted from the direct rate, at
:data:`CHANNEL_ROW_WEIGHT` units per token). The model passes may take :data:`SCORING_SHARE` of the
budget; the rest is left to the search, which is numpy and is never cut.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .demos import Variant

SCORING_SHARE = 0.8
CHANNEL_ROW_WEIGHT = 2.0  # a channel token costs its decode and its vocabulary-wide logit row
CANDIDATE_ROW = 0.25  # direct: what each extra candidate adds per text, in tokens (rows of multi-token ones)


class Budget:
    """Seconds left for scoring, the rate measured so far, and what was skipped (with why)."""

    def __init__(self, seconds: float | None, started: float, text_tokens: Sequence[int]) -> None:
        self.seconds = seconds
        self.started = started
        self.tokens = sum(text_tokens)
        self.n_texts = len(text_tokens)
        self.rates: dict[str, float] = {}
        self.skipped: list[str] = []
        self._pass_started = started

    def units(self, variant: Variant, n_candidates: int) -> float:
        if variant.direction == "channel":
            return n_candidates * (self.tokens + 3 * self.n_texts) * CHANNEL_ROW_WEIGHT
        return self.tokens + CANDIDATE_ROW * n_candidates * self.n_texts

    def predict(self, variant: Variant, n_candidates: int) -> float | None:
        """Seconds the variant's pass should take (None before any pass was timed)."""
        rate = self.rates.get(variant.direction, self.rates.get("direct"))
        return None if rate is None else rate * self.units(variant, n_candidates)

    def allows(self, variant: Variant, n_candidates: int) -> bool:
        """Whether the pass fits what is left of the scoring share; records the skip when not."""
        self._pass_started = time.perf_counter()
        predicted = self.predict(variant, n_candidates)
        if self.seconds is None or predicted is None:
            return True
        left = SCORING_SHARE * self.seconds - (self._pass_started - self.started)
        if predicted <= left:
            return True
        self.skipped.append(f"{variant.describe()}: its pass would take about {predicted:.0f} s, {max(left, 0):.0f} s "
                            f"of the {self.seconds:.0f} s budget's scoring share left")
        return False

    def spent(self, variant: Variant, n_candidates: int) -> None:
        """A pass just ended: update the direction's seconds per unit."""
        seconds = time.perf_counter() - self._pass_started
        rate = seconds / max(self.units(variant, n_candidates), 1.0)
        old = self.rates.get(variant.direction)
        self.rates[variant.direction] = rate if old is None else max(rate, (old + rate) / 2)
