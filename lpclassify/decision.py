"""Label probabilities -> a :class:`Prediction`: a label, an abstention with its reason, several labels.

>>> p = decide_single(["neg", "pos"], [0.3, 0.7], threshold=0.8, top_k=1)
>>> p.label, p.abstained, p.reason
(None, True, 'top probability 0.700 (pos) is below the threshold 0.800')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from .scores import CompletionScore, RawScores

if TYPE_CHECKING:
    from .config import Config


@dataclass(frozen=True)
class Prediction:
    """What the classifier decided for one text, and the evidence behind it.

    ``probabilities`` maps every label to its probability (summing to 1 in single-label mode;
    in multi-label mode each is that label's own yes-probability). ``labels`` lists the chosen
    labels: the top-k in single-label mode, every label over its threshold in multi-label mode.
    ``truncated``: the text was cut to fit the context; ``n_chunks``: it was scored in that many
    windows (``runtime.long_inputs: chunk``). A pruned search (``scoring.search: top_k``) gives
    ``probabilities`` only for the labels it read in full, each low by at most ``tolerance``
    times itself, and for every other label an upper bound on its probability in ``pruned``.
    """

    label: str | None
    probabilities: dict[str, float]
    labels: tuple[str, ...] = ()
    abstained: bool = False
    reason: str | None = None
    scores: tuple[CompletionScore, ...] = field(default=(), repr=False)
    truncated: bool = False
    n_chunks: int = 1
    pruned: dict[str, float] = field(default_factory=dict, repr=False)
    tolerance: float | None = None

    def as_dict(self, *, top_k: int | None = None) -> dict[str, object]:
        """A JSON-ready record (what the CLI writes); ``top_k``: only the k most likely labels'
        probabilities, most likely first (for label sets too large to list whole)."""
        probabilities = self.probabilities
        if top_k is not None:
            best = sorted(probabilities, key=lambda name: -probabilities[name])[:top_k]
            probabilities = {name: probabilities[name] for name in best}
        record: dict[str, object] = {
            "label": self.label,
            "labels": list(self.labels),
            "probabilities": {name: round(p, 6) for name, p in probabilities.items()},
            "abstained": self.abstained,
            "reason": self.reason,
        }
        if self.truncated:
            record["truncated"] = True
        if self.n_chunks > 1:
            record["chunks"] = self.n_chunks
        if self.tolerance is not None:
            record["tolerance"] = float(f"{self.tolerance:.3g}")
            record["pruned"] = len(self.pruned)
            record["pruned_bound"] = round(max(self.pruned.values(), default=0.0), 6)
        return record


def decide_single(names: Sequence[str], probabilities: Sequence[float] | np.ndarray, *, threshold: float,
                  top_k: int, scores: Sequence[CompletionScore] = (), truncated: bool = False) -> Prediction:
    """Argmax, or abstain when the top probability is under ``threshold``; ties go to the first label."""
    probs = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-probs, kind="stable")
    best = int(order[0])
    as_dict = {name: float(p) for name, p in zip(names, probs, strict=True)}
    if probs[best] < threshold:
        reason = (f"top probability {probs[best]:.3f} ({names[best]}) is below the threshold {threshold:.3f}")
        return Prediction(None, as_dict, (), True, reason, tuple(scores), truncated)
    chosen = tuple(names[int(i)] for i in order[:top_k])
    return Prediction(names[best], as_dict, chosen, False, None, tuple(scores), truncated)


def decide_multi(names: Sequence[str], yes_probabilities: Sequence[float] | np.ndarray,
                 thresholds: Sequence[float], *, scores: Sequence[CompletionScore] = (),
                 truncated: bool = False, none: str | None = None) -> Prediction:
    """Every label on its own: chosen when its probability (its yes-probability, or its share of one
    shared distribution) reaches its threshold. ``none``: the label that stands for "none of these",
    never chosen (when it is the most likely, the reason says so)."""
    probs = np.asarray(yes_probabilities, dtype=np.float64)
    as_dict = {name: float(p) for name, p in zip(names, probs, strict=True)}
    order = [int(i) for i in np.argsort(-probs, kind="stable")]
    candidates = [i for i in order if names[i] != none]
    chosen = tuple(names[i] for i in candidates if probs[i] >= thresholds[i])
    if not chosen:
        best = candidates[0]
        reason = (f"no label reached its threshold (best: {names[best]} {probs[best]:.3f} "
                  f"< {thresholds[best]:.3f})")
        if none is not None and names[order[0]] == none:
            reason = f"{none} (none of the labels) is the most likely answer, {probs[order[0]]:.3f}; " + reason
        return Prediction(None, as_dict, (), True, reason, tuple(scores), truncated)
    return Prediction(chosen[0], as_dict, chosen, False, None, tuple(scores), truncated)


def thresholds(config: Config) -> dict[str, float]:
    """Each label's multi-label threshold: its own, else ``decision.threshold``."""
    return {label.name: label.threshold if label.threshold is not None else config.decision.threshold
            for label in config.labels}


def decide(config: Config, raw: RawScores, probabilities: np.ndarray) -> list[Prediction]:
    """One prediction per text, as the config's decision section says."""
    names = config.label_names
    decision = config.decision
    per_label = list(thresholds(config).values())
    out = []
    assert raw.n_chunks is not None
    for i in range(len(probabilities)):
        if decision.mode == "multi":
            prediction = decide_multi(names, probabilities[i], per_label, scores=raw.scores[i],
                                      truncated=bool(raw.truncated[i]), none=decision.multi.none)
        else:
            prediction = decide_single(names, probabilities[i], threshold=decision.threshold, top_k=decision.top_k,
                                       scores=raw.scores[i], truncated=bool(raw.truncated[i]))
        n_chunks = int(raw.n_chunks[i])
        out.append(replace(prediction, n_chunks=n_chunks) if n_chunks > 1 else prediction)
    return out
