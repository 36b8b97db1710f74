"""Classification and calibration metrics: pure numpy functions on label indices and probabilities.

``y_true`` and ``y_pred`` are integer label indices ``(n,)``; ``probabilities`` is ``(n, n_labels)``
with rows summing to 1. Nothing here knows about models or configs.

>>> import numpy as np
>>> y_true = np.array([0, 0, 1, 1])
>>> y_pred = np.array([0, 1, 1, 1])
>>> accuracy(y_true, y_pred)
0.75
>>> confusion_matrix(y_true, y_pred, 2).tolist()
[[1, 1], [0, 2]]
>>> round(macro_f1(y_true, y_pred, 2), 4)
0.7333
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ECE_BINS = 15
DEFAULT_THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _indices(values: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


def accuracy(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """Fraction of predictions equal to the truth (nan for no examples)."""
    y_true, y_pred = _indices(y_true), _indices(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                     n_labels: int) -> np.ndarray:
    """``m[i, j]`` = how many examples of true label ``i`` were predicted as ``j`` (rows: truth)."""
    y_true, y_pred = _indices(y_true), _indices(y_pred)
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


@dataclass(frozen=True)
class PerLabel:
    """Per-label precision, recall, F1 and support (true count), each an array ``(n_labels,)``."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray


def per_label(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, n_labels: int) -> PerLabel:
    """Precision, recall and F1 of each label, one-vs-rest.

    A label never predicted has precision 0, one never true has recall 0, and F1 is 0 when
    both are 0 (scikit-learn's ``zero_division=0``): a label the classifier ignores counts
    against it in the macro average instead of vanishing from it.

    >>> r = per_label([0, 0, 1, 1], [0, 1, 1, 1], 2)
    >>> r.precision.tolist(), r.recall.tolist(), r.f1.round(4).tolist(), r.support.tolist()
    ([1.0, 0.6666666666666666], [0.5, 1.0], [0.6667, 0.8], [2, 2])
    """
    matrix = confusion_matrix(y_true, y_pred, n_labels).astype(np.float64)
    hits = np.diag(matrix)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros(n_labels), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros(n_labels), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(n_labels), where=total > 0)
    return PerLabel(precision, recall, f1, support.astype(np.int64))


def macro_f1(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, n_labels: int) -> float:
    """Unweighted mean of the per-label F1 scores (every label counts the same, however rare)."""
    return float(per_label(y_true, y_pred, n_labels).f1.mean())


def _check_probabilities(probabilities: np.ndarray, y_true: np.ndarray) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or len(probabilities) != len(y_true):
        raise ValueError(f"expected probabilities (n, n_labels) for {len(y_true)} labels, got {probabilities.shape}")
    return probabilities


@dataclass(frozen=True)
class ReliabilityBins:
    """Top-label confidence histogram: per bin its count, mean confidence and accuracy (nan if empty)."""

    edges: np.ndarray  # (n_bins + 1,)
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray


def reliability_bins(probabilities: np.ndarray, y_true: Sequence[int] | np.ndarray,
                     n_bins: int = ECE_BINS) -> ReliabilityBins:
    """Bin the examples by top-label confidence into ``n_bins`` equal-width bins ``(lo, hi]`` of [0, 1].

    (Guo et al. 2017; a confidence of exactly 0 falls in the first bin.)
    """
    y_true = _indices(y_true)
    probabilities = _check_probabilities(probabilities, y_true)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=n_bins) / count
        mean_accuracy = np.bincount(which, weights=correct, minlength=n_bins) / count
    return ReliabilityBins(edges, count, mean_confidence, mean_accuracy)


def expected_calibration_error(probabilities: np.ndarray, y_true: Sequence[int] | np.ndarray,
                               n_bins: int = ECE_BINS) -> float:
    """ECE: sum over bins of (bin size / n) * |accuracy - mean confidence|, top-label, 15 equal-width bins.

    >>> round(expected_calibration_error(np.array([[0.9, 0.1], [0.6, 0.4]]), [0, 1]), 4)
    0.35
    """
    bins = reliability_bins(probabilities, y_true, n_bins)
    filled = bins.count > 0
    if not filled.any():
        return float("nan")
    gaps = np.abs(bins.accuracy[filled] - bins.confidence[filled])
    return float(np.sum(bins.count[filled] * gaps) / bins.count.sum())


def brier_score(probabilities: np.ndarray, y_true: Sequence[int] | np.ndarray) -> float:
    """Mean over examples of the squared distance to the one-hot truth, summed over labels (0 best, 2 worst).

    This is Brier's original multi-class form; some libraries divide it by the number of labels.

    >>> round(brier_score(np.array([[0.9, 0.1], [0.6, 0.4]]), [0, 1]), 4)
    0.37
    """
    y_true = _indices(y_true)
    probabilities = _check_probabilities(probabilities, y_true)
    onehot = np.eye(probabilities.shape[1])[y_true]
    return float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1)))


def log_loss(probabilities: np.ndarray, y_true: Sequence[int] | np.ndarray, eps: float = 1e-15) -> float:
    """Mean negative log-probability of the true label (probabilities clipped at ``eps``)."""
    y_true = _indices(y_true)
    probabilities = _check_probabilities(probabilities, y_true)
    return float(-np.mean(np.log(np.clip(probabilities[np.arange(len(y_true)), y_true], eps, 1.0))))


@dataclass(frozen=True)
class Selective:
    """Abstaining below ``threshold``: the fraction of examples answered and the accuracy on them."""

    threshold: float
    coverage: float
    accuracy: float  # nan when nothing is answered
    n_answered: int


def selective_accuracy(probabilities: np.ndarray, y_true: Sequence[int] | np.ndarray,
                       thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> list[Selective]:
    """Coverage and accuracy when the classifier abstains whenever its top probability is under a threshold.

    Matches the decision rule (answer when top probability >= threshold).

    >>> rows = selective_accuracy(np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]), [0, 1, 1], [0.0, 0.65])
    >>> [(r.threshold, round(r.coverage, 3), round(r.accuracy, 3)) for r in rows]
    [(0.0, 1.0, 0.667), (0.65, 0.667, 1.0)]
    """
    y_true = _indices(y_true)
    probabilities = _check_probabilities(probabilities, y_true)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y_true
    out = []
    for threshold in thresholds:
        answered = confidence >= threshold
        n = int(answered.sum())
        out.append(Selective(float(threshold), n / len(y_true) if len(y_true) else float("nan"),
                             float(correct[answered].mean()) if n else float("nan"), n))
    return out
