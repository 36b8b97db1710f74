"""What the model said about texts: per completion (:class:`CompletionScore`), as arrays (:class:`RawScores`).

>>> import numpy as np
>>> from lpclassify.tokenization import Candidate
>>> s = completion_score("positive", Candidate(" good", (5, 7), 1), np.array([-0.5, -1.25]))
>>> s.logprob, s.n_tokens
(-1.25, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

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


def mean_score(scores: Sequence[CompletionScore]) -> CompletionScore:
    """One completion's scores in several windows of a text -> their mean (per token where they align)."""
    first = scores[0]
    per_token = first.token_logprobs
    if all(len(s.token_logprobs) == len(per_token) for s in scores):
        per_token = tuple(float(v) for v in np.mean([s.token_logprobs for s in scores], axis=0))
    return replace(first, logprob=float(np.mean([s.logprob for s in scores])),
                   n_tokens=round(float(np.mean([s.n_tokens for s in scores]))), token_logprobs=per_token)


@dataclass
class RawScores:
    """Raw summed log-probs of every candidate for a batch of texts: the cacheable model output.

    Every normalization and calibration method works from these arrays alone, so comparing
    methods costs one model pass.
    """

    logprobs: np.ndarray  # (n_texts, n_candidates)
    n_tokens: np.ndarray  # (n_texts, n_candidates)
    n_chars: np.ndarray  # (n_candidates,)
    truncated: np.ndarray  # (n_texts,) bool
    scores: list[tuple[CompletionScore, ...]]
    n_chunks: np.ndarray | None = None  # (n_texts,) windows each text was scored in; None: all 1
    # scoring.rerank: (n_texts, n_labels) log p(text | label) of each text's reranked labels, NaN for the rest
    rerank: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.n_chunks is None:
            self.n_chunks = np.ones(len(self.logprobs), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.logprobs)

    def rows(self, rows: slice | np.ndarray) -> RawScores:
        """The scores of some texts (a slice or an index array)."""
        index = np.arange(len(self.logprobs))[rows]
        assert self.n_chunks is not None
        return RawScores(self.logprobs[index], self.n_tokens[index], self.n_chars, self.truncated[index],
                         [self.scores[i] for i in index], self.n_chunks[index],
                         None if self.rerank is None else self.rerank[index])

    @staticmethod
    def concat(parts: Sequence[RawScores]) -> RawScores:
        """The scores of several batches as one, in order."""
        if len(parts) == 1:
            return parts[0]
        reranks = [p.rerank for p in parts if p.rerank is not None]
        return RawScores(np.concatenate([p.logprobs for p in parts]), np.concatenate([p.n_tokens for p in parts]),
                         parts[0].n_chars, np.concatenate([p.truncated for p in parts]),
                         [row for p in parts for row in p.scores],
                         np.concatenate([p.n_chunks for p in parts if p.n_chunks is not None]),
                         np.concatenate(reranks) if len(reranks) == len(parts) else None)
