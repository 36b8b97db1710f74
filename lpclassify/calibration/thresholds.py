"""Multi-label thresholds fitted from labelled examples: each label's cut-off on its own yes-probability.

In multi-label mode every label is a yes/no question, decided by comparing its yes-probability
with a threshold (``labels.*.threshold``, default ``decision.threshold``). A small model's
yes-probabilities are far from calibrated -- one label's "yes" may hover around 0.2 when true,
another's around 0.8 when false -- so one threshold for all does badly. :func:`fit_thresholds`
picks, per label, the cut-off that maximizes that label's F1 on the examples.

>>> import numpy as np
>>> p = np.array([[0.9, 0.2], [0.7, 0.25], [0.6, 0.1], [0.3, 0.05]])
>>> truth = np.array([[1, 1], [1, 1], [0, 0], [0, 0]], dtype=bool)
>>> [round(t, 3) for t in fit_thresholds(p, truth)]
[0.65, 0.15]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def best_threshold(probabilities: np.ndarray, truth: np.ndarray, default: float = 0.5) -> float:
    """The cut-off (a midpoint between observed probabilities) with the best F1; ties: the one nearest ``default``.

    With no positive example there is nothing to aim for: ``default`` comes back.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    t = np.asarray(truth, dtype=bool)
    if not t.any():
        return default
    values = np.unique(p)
    cuts = np.concatenate([[values[0] / 2], (values[:-1] + values[1:]) / 2, [(values[-1] + 1) / 2]])
    best, best_key = default, (-1.0, 0.0)
    for cut in cuts:
        chosen = p >= cut
        tp = float(np.sum(chosen & t))
        f1 = 2 * tp / (chosen.sum() + t.sum()) if chosen.any() else 0.0
        key = (round(f1, 12), -abs(cut - default))
        if key > best_key:
            best, best_key = float(cut), key
    return best


def fit_thresholds(yes_probabilities: np.ndarray, truth: np.ndarray,
                   defaults: Sequence[float] | None = None) -> tuple[float, ...]:
    """One threshold per label (columns): :func:`best_threshold` of each column."""
    p = np.asarray(yes_probabilities, dtype=np.float64)
    t = np.asarray(truth, dtype=bool)
    if p.shape != t.shape or p.ndim != 2:
        raise ValueError("expected yes-probabilities and truth of the same shape (n_texts, n_labels)")
    defaults = defaults if defaults is not None else [0.5] * p.shape[1]
    return tuple(best_threshold(p[:, j], t[:, j], defaults[j]) for j in range(p.shape[1]))


def label_sets(labels: Sequence[object], names: Sequence[str]) -> np.ndarray:
    """Each example's true labels (a name, or a list of names; ``[]``: none) as a boolean ``(n, n_labels)`` matrix."""
    index = {name: i for i, name in enumerate(names)}
    out = np.zeros((len(labels), len(names)), dtype=bool)
    for row, value in enumerate(labels):
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, str) or item not in index:
                raise ValueError(f"label {item!r} (item {row}) is not a label name ({', '.join(names)})")
            out[row, index[item]] = True
    return out
