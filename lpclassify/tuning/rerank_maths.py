"""The rerank stage's arithmetic on the search's scores (numpy only): what :mod:`lpclassify.rerank`
computes at inference, from a direct setting's log-probabilities and tune's channel pass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ..config.direction import verbalization
from ..normalize import aggregate, safe_log
from ..rerank import combine


class ChannelPass(Protocol):
    """What is read of a channel pass (:class:`.search.PromptScores`, which imports this module)."""

    @property
    def columns(self) -> tuple[tuple[int, str], ...]: ...

    @property
    def logprobs(self) -> np.ndarray: ...


def channel_log_likelihoods(channel: ChannelPass, completions: Sequence[tuple[str, ...]],
                            aggregation: str) -> np.ndarray | None:
    """Each label's log p(input | label) as the rerank stage of a config with these direct ``completions``
    and ``aggregate`` computes it (:func:`lpclassify.rerank.label_loglik`): the channel pass's columns of
    the label's verbalizations (its completions stripped), combined as channel scoring combines them
    (``logsumexp``: a uniform mixture). ``(n_texts, n_labels)``; None when the pass did not score one of
    them, or a label names one verbalization twice (the rerank's channel config would refuse it)."""
    verbalized = {(label, verbalization(c)): i for i, (label, c) in enumerate(channel.columns)}
    cols, owners = [], []
    for label, found in enumerate(completions):
        said = [verbalization(c) for c in found]
        if len(set(said)) != len(said) or any((label, v) not in verbalized for v in said):
            return None
        cols += [verbalized[(label, v)] for v in said]
        owners += [label] * len(said)
    channel_aggregate = "logmeanexp" if aggregation == "logsumexp" else aggregation  # as Scoring.label_aggregate
    return aggregate(channel.logprobs[:, cols], owners, len(completions), channel_aggregate)


def reranked(log_probs: np.ndarray, channel: np.ndarray, top: int, weight: float) -> np.ndarray:
    """Log-probabilities after the rerank stage: each row's ``top`` most probable labels (as
    :meth:`lpclassify.rerank.Reranker.scores` picks them) share their probability by
    :func:`lpclassify.rerank.combine` with their channel log-likelihoods."""
    probs = np.exp(log_probs)
    picked = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    masked = np.full(probs.shape, np.nan)
    rows = np.arange(len(probs))[:, None]
    masked[rows, picked] = channel[rows, picked]
    return safe_log(combine(probs, masked, weight))
