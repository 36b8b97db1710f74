"""``tune --budget``: which prompt variants there is time to score, predicted from the passes already made.

A pass's cost is counted in units: a direct pass decodes each text's tokens once (its candidates
share a trie and are read from about one row each); a channel pass decodes each text once per
verbalization and reads a logit row for every one of those tokens. Seconds per unit are measured
per direction on the passes made (a first channel pass is predicted from the direct rate, at
:data:`CHANNEL_ROW_WEIGHT` units per token). The search afterwards (numpy) costs about the same per
setting whatever the variant: that cost is timed on a sample of the first variant's settings, and a
variant is scored only if its pass and the search over every setting so far fit what is left.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .demos import Variant

if TYPE_CHECKING:
    from .search import Search

SEARCH_SAMPLE = 12  # settings timed to predict the search
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
        self.per_setting = 0.0  # seconds the search spends per setting (all its selections)
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

    def allows(self, variant: Variant, n_candidates: int, n_settings: int) -> bool:
        """Whether the pass, and the search over ``n_settings`` (this variant's included), fit what is left;
        records the skip when not."""
        self._pass_started = time.perf_counter()
        predicted = self.predict(variant, n_candidates)
        if self.seconds is None or predicted is None:
            return True
        search = self.per_setting * n_settings
        left = self.seconds - (self._pass_started - self.started)
        if predicted + search <= left:
            return True
        self.skipped.append(f"{variant.describe()}: its pass (about {predicted:.0f} s) and the search (about "
                            f"{search:.0f} s) would not fit the {max(left, 0):.0f} s left of the "
                            f"{self.seconds:.0f} s budget")
        return False

    def allows_settings(self, what: str, n_settings: int) -> bool:
        """Whether the search over ``n_settings`` (``what`` included: settings that need no pass, such as
        reranks) fits what is left; records the skip when not."""
        if self.seconds is None:
            return True
        search = self.per_setting * n_settings
        left = self.seconds - (time.perf_counter() - self.started)
        if search <= left:
            return True
        self.skipped.append(f"{what}: the search (about {search:.0f} s) would not fit the {max(left, 0):.0f} s "
                            f"left of the {self.seconds:.0f} s budget")
        return False

    def time_search(self, search: Search, folds: int) -> None:
        """Time a sample of ``search``'s settings (cross-validated as a selection does) to predict the search:
        each setting is scored in ``folds + 1`` selections, and refinement adds a share of that."""
        sample = search.settings[:: max(1, len(search.settings) // SEARCH_SAMPLE)][:SEARCH_SAMPLE]
        rows = np.arange(len(search.y))
        started = time.perf_counter()
        for setting in sample:
            search.cv_score(setting, rows)
        each = (time.perf_counter() - started) / max(len(sample), 1)
        self.per_setting = each * (folds + 1) * search.steps_per_select() / max(len(search.settings), 1)

    def spent(self, variant: Variant, n_candidates: int) -> None:
        """A pass just ended: update the direction's seconds per unit."""
        seconds = time.perf_counter() - self._pass_started
        rate = seconds / max(self.units(variant, n_candidates), 1.0)
        old = self.rates.get(variant.direction)
        self.rates[variant.direction] = rate if old is None else max(rate, (old + rate) / 2)
