"""The oracle: every prompt + candidate evaluated on its own, the obviously right way.

A backend supplies one primitive, ``score_alone(prompt, continuation)`` -> the log-prob of each
continuation token after the prompt and the tokens before it, from an empty context; this
module runs it over every candidate of every text. The fast path must match its results
(tests/test_backend.py); it also serves models whose memory cannot be rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import CapacityError
from ..tokenization import EncodedText
from .base import ScoreResult

ScoreAlone = Callable[[Sequence[int], Sequence[int]], np.ndarray]


def score_each_alone(score_alone: ScoreAlone, texts: Sequence[EncodedText]) -> ScoreResult:
    """Per-token log-probs of every candidate of every text, one prompt + candidate at a time."""
    return [[score_alone(text.prompt, candidate.tokens) for candidate in text.candidates] for text in texts]


def check_reference_capacity(continuation: Sequence[int], max_outputs: int) -> None:
    """A continuation needs one logit row per token; past the backend's bound llama.cpp would abort."""
    if len(continuation) > max_outputs:
        raise CapacityError(f"a completion of {len(continuation)} tokens exceeds the {max_outputs} logit rows "
                            "one decode may return: use shorter completions")
