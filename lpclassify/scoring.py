"""Per-token log-probs -> one score per completion.

>>> import numpy as np
>>> from lpclassify.tokenization import Candidate
>>> s = completion_score("positive", Candidate(" good", (5, 7), 1), np.array([-0.5, -1.25]))
>>> s.logprob, s.n_tokens
(-1.25, 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tokenization import Candidate


@dataclass(frozen=True)
class CompletionScore:
    """The raw evidence for one completion: its summed log-prob and what it was summed over."""

    label: str
    completion: str
    logprob: float  # sum of log p(token | everything before) over the completion's own tokens
    n_tokens: int
    token_logprobs: tuple[float, ...]

    def as_dict(self) -> dict[str, object]:
        return {"label": self.label, "completion": self.completion, "logprob": self.logprob,
                "n_tokens": self.n_tokens}


def completion_score(label: str, candidate: Candidate, token_logprobs: np.ndarray) -> CompletionScore:
    """Sum the log-probs of the candidate's own tokens (the tail past the prompt boundary)."""
    own = token_logprobs[len(token_logprobs) - candidate.n_scored:]
    return CompletionScore(label=label, completion=candidate.completion, logprob=float(own.sum()),
                           n_tokens=candidate.n_scored, token_logprobs=tuple(float(v) for v in own))
