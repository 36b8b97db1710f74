"""Domain-conditional PMI (Holtzman et al. 2021): score a completion against a neutral context.

>>> import numpy as np
>>> pmi_scores(np.array([[-1.0, -3.0]]), np.array([-0.5, -4.0])).tolist()
[[-0.5, 1.0]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import Calibration, Context

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .state import CalibrationState

# The neutral context: the template with the text left empty.
NEUTRAL_TEXT = ""


def pmi_scores(logprobs: np.ndarray, neutral_logprobs: np.ndarray) -> np.ndarray:
    """log p(c | prompt with text) - log p(c | neutral prompt), per completion.

    A completion that is likely whatever the text ("surface form competition": " good" is a
    common word) loses that advantage. ``neutral_logprobs`` holds each completion's summed
    log-prob under the neutral prompt, shape ``(n_candidates,)``; it broadcasts over the texts.
    """
    return np.asarray(logprobs, dtype=np.float64) - np.asarray(neutral_logprobs, dtype=np.float64)


class Pmi(Calibration):
    name = "pmi"
    summary = "each completion's log-prob minus its log-prob after the template with an empty text"

    def reference_texts(self, content_free: Sequence[str], mode: str, state: CalibrationState) -> tuple[str, ...]:
        return (NEUTRAL_TEXT,) if mode == "single" else ()

    def offsets(self, context: Context) -> np.ndarray | None:
        if context.mode != "single":
            return None
        return context.raw_references([NEUTRAL_TEXT]).logprobs[0]

    def completion_scores(self, logprobs: np.ndarray, context: Context) -> np.ndarray:
        offsets = self.offsets(context)
        return logprobs if offsets is None else pmi_scores(logprobs, offsets)
