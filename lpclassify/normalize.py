"""Completion scores -> label scores -> label probabilities: pure numpy functions.

Shapes: completion arrays are ``(..., n_candidates)``; label arrays are ``(..., n_labels)``.

>>> import numpy as np
>>> softmax(np.array([0.0, np.log(3.0)])).round(3).tolist()
[0.25, 0.75]
>>> aggregate(np.array([[-1.0, -2.0, -0.5]]), [0, 0, 1], 2, "max").tolist()
[[-1.0, -0.5]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def normalize(logprobs: np.ndarray, n_tokens: np.ndarray, n_chars: np.ndarray, method: str) -> np.ndarray:
    """Per-completion score: ``sum`` (as is), ``mean`` (per token) or ``chars`` (per character).

    Longer completions collect more negative log-prob; dividing by length compares
    completions of different lengths on a per-unit basis.
    """
    logprobs = np.asarray(logprobs, dtype=np.float64)
    if method == "sum":
        return logprobs
    if method == "mean":
        return logprobs / np.maximum(np.asarray(n_tokens, dtype=np.float64), 1.0)
    if method == "chars":
        return logprobs / np.maximum(np.asarray(n_chars, dtype=np.float64), 1.0)
    raise ValueError(f"unknown normalization {method!r}")


def aggregate(scores: np.ndarray, owners: Sequence[int], n_labels: int, method: str) -> np.ndarray:
    """Combine each label's completion scores: ``logsumexp`` (any verbalizer), ``max`` (best one) or
    ``logmeanexp`` (their mean likelihood: channel scoring's mixture of verbalizations).

    ``owners[i]`` is the label index of completion ``i`` (-1: none); scores may have leading batch axes.
    """
    if method not in ("logsumexp", "max", "logmeanexp"):
        raise ValueError(f"unknown aggregation {method!r}")
    scores = np.asarray(scores, dtype=np.float64)
    out = np.empty((*scores.shape[:-1], n_labels), dtype=np.float64)
    # Labels with the same number of completions are reduced together (one gather and one
    # reduction per group, not a Python loop over 1,000 labels); each label's row holds its own
    # completions in column order, so every label gets the bits a reduction of it alone gives.
    for labels, columns in _groups(owners, n_labels):
        mine = scores[..., columns]  # (..., n_group, n_completions)
        if method == "max":
            out[..., labels] = mine.max(axis=-1)
        else:
            out[..., labels] = logsumexp(mine, axis=-1)
            if method == "logmeanexp":
                out[..., labels] -= np.log(columns.shape[-1])
    return out


def _groups(owners: Sequence[int], n_labels: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(labels, their column indices ``(n_group, n)`` in column order) for each completion count ``n``."""
    owners_array = np.asarray(owners, dtype=np.int64)
    order = np.argsort(owners_array, kind="stable")  # stable: a label's columns stay in order
    starts = np.searchsorted(owners_array[order], np.arange(n_labels + 1))  # owner -1 sorts first, unused
    counts = np.diff(starts)
    return [(labels, order[starts[labels][:, None] + np.arange(size)])
            for size in np.unique(counts) for labels in [np.flatnonzero(counts == size)]]


def logsumexp(values: np.ndarray, axis: int = -1) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    peak = np.max(values, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    return np.squeeze(peak, axis=axis) + np.log(np.sum(np.exp(values - peak), axis=axis))


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Label probabilities from label log-scores, stable for very negative scores."""
    scores = np.asarray(scores, dtype=np.float64)
    shifted = scores - np.max(scores, axis=axis, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=axis, keepdims=True)


def log_probabilities(label_scores: np.ndarray) -> np.ndarray:
    """Label log-probabilities from label log-scores (a stable log-softmax)."""
    label_scores = np.asarray(label_scores, dtype=np.float64)
    return label_scores - logsumexp(label_scores, axis=-1)[..., None]


def safe_log(probabilities: np.ndarray) -> np.ndarray:
    """log p with p clipped away from 0 (what fitted calibration learns from)."""
    return np.log(np.clip(probabilities, 1e-300, None))


def label_bias(probabilities: np.ndarray, bias: Sequence[float], temperature: float = 1.0) -> np.ndarray:
    """Per-label bias (nats) and a temperature on label probabilities: ``softmax(log p / T + bias)``.

    The logit-bias idea applied to labels: a bias of ``log 2`` makes a label twice as likely
    before renormalizing. With no bias and ``T = 1`` the probabilities come back unchanged.

    >>> label_bias(np.array([[0.5, 0.5]]), [0.0, np.log(3.0)]).round(3).tolist()
    [[0.25, 0.75]]
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    bias_array = np.asarray(bias, dtype=np.float64)
    if temperature == 1.0 and not bias_array.any():
        return probabilities
    return softmax(safe_log(probabilities) / temperature + bias_array)


def yes_bias(yes_probabilities: np.ndarray, bias: Sequence[float], temperature: float = 1.0) -> np.ndarray:
    """Multi-label: each label's bias (nats) added to its yes-vs-no log-odds, after dividing them by ``T``.

    >>> yes_bias(np.array([[0.5, 0.5]]), [0.0, np.log(3.0)]).round(3).tolist()
    [[0.5, 0.75]]
    """
    p = np.asarray(yes_probabilities, dtype=np.float64)
    bias_array = np.asarray(bias, dtype=np.float64)
    if temperature == 1.0 and not bias_array.any():
        return p
    odds = safe_log(p) - safe_log(1.0 - p)
    return 1.0 / (1.0 + np.exp(-(odds / temperature + bias_array)))
