"""Everything behind one decision, as data: what ``lpclassify explain`` prints and ``--json`` writes.

>>> from lpclassify import Classifier                                   # doctest: +SKIP
>>> report = Classifier.from_config("sentiment").explain("Not bad at all")  # doctest: +SKIP
>>> report.prediction.label, report.probabilities                        # doctest: +SKIP
('positive', {'positive': 0.81, 'negative': 0.19})
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .decision import Prediction, thresholds
from .inputs import Input
from .records.writers import json_safe
from .rerank import combine

if TYPE_CHECKING:
    from .backends.base import Backend
    from .calibrator import Calibrator
    from .config import Config
    from .scorer import Scorer
    from .scores import RawScores
    from .tokenization import EncodedText


class Explainable(Protocol):
    """What :func:`explain` reads of a classifier (``Classifier`` has it; naming it would be a cycle)."""

    @property
    def config(self) -> Config: ...

    backend: Backend
    scorer: Scorer
    calibrator: Calibrator

    def encode(self, text: Input) -> tuple[EncodedText, bool]: ...

    def raw_scores(self, texts: Sequence[Input], *, reference: bool = False) -> RawScores: ...

    def decide(self, raw: RawScores, probabilities: np.ndarray | None = None) -> list[Prediction]: ...

    def prompts(self, text: Input) -> list[tuple[str, str]]: ...


@dataclass(frozen=True)
class Explanation:
    """One text's prompts, per-token log-probs, label scores, probabilities and decision."""

    text: Input
    config: dict[str, Any]
    model: dict[str, Any]
    prompts: list[str]
    truncated: bool
    chunks: int
    completions: list[dict[str, Any]]
    label_scores: dict[str, Any]
    prior: dict[str, float] | None
    probabilities_uncalibrated: dict[str, float]
    probabilities: dict[str, float]
    prediction: Prediction
    why: str
    special_tokens: tuple[str, ...] = ()  # special tokens of the template text (never of the input)
    # scoring.rerank: its prompt, top, weight, and per reranked label the direct probability and log p(input | label)
    rerank: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite numbers as None)."""
        return {
            "text": self.text if isinstance(self.text, str) else dict(self.text), "config": self.config,
            "model": self.model, "prompts": self.prompts, "special_tokens": list(self.special_tokens),
            "truncated": self.truncated, "chunks": self.chunks, "completions": self.completions,
            "label_scores": self.label_scores, "prior": self.prior,
            "probabilities_uncalibrated": self.probabilities_uncalibrated, "probabilities": self.probabilities,
            "prediction": {**json_safe(self.prediction.as_dict()), "explanation": self.why},
            **({"rerank": self.rerank} if self.rerank is not None else {}),
        }


def explain(clf: Explainable, text: Input) -> Explanation:
    """Score ``text`` (or a record of the prompt's fields) and keep every intermediate number."""
    config = clf.config
    backend = clf.backend
    slots = clf.scorer.slots
    scoring = config.scoring
    encoded, truncated = clf.encode(text)
    raw = clf.raw_scores([text])
    trace = clf.calibrator.trace(raw)
    normalized = trace.normalized[0]
    before = trace.uncalibrated[0]
    after = trace.probabilities[0]
    names = list(config.label_names)
    rerank = None
    reranker = getattr(clf, "reranker", None)
    if reranker is not None and raw.rerank is not None:  # the top labels' share, redistributed
        reranked = np.flatnonzero(~np.isnan(raw.rerank[0]))
        rerank = {"top": reranker.top, "weight": reranker.weight,
                  "prompt": reranker.config.prompt,
                  "labels": {names[j]: {"p_direct": float(after[j]), "loglik": float(raw.rerank[0, j])}
                             for j in reranked}}
        after = combine(after[None, :], raw.rerank, reranker.weight)[0]
    prediction = clf.decide(raw, after[None, :])[0]

    completions = []
    for slot, candidate, score, norm in zip(slots, encoded.candidates, raw.scores[0], normalized, strict=True):
        own = candidate.tokens[len(candidate.tokens) - candidate.n_scored:]
        boundary = candidate.tokens[: len(candidate.tokens) - candidate.n_scored]
        entry: dict[str, Any] = {
            "label": slot.name,
            "completion": slot.completion,
            "tokens": [{"id": int(t), "text": backend.token_text(t), "logprob": json_safe(lp)}
                       for t, lp in zip(own, score.token_logprobs, strict=True)],
            "boundary_tokens": [{"id": int(t), "text": backend.token_text(t)} for t in boundary[-3:]],
            "n_boundary_tokens": len(boundary),
            "logprob": json_safe(score.logprob),
            "normalized": json_safe(float(norm)),
        }
        if slot.answer is not None:
            entry["answer"] = slot.answer
        completions.append(entry)

    scores: dict[str, Any]
    if trace.no_scores is None:
        scores = {name: json_safe(float(v)) for name, v in zip(names, trace.label_scores[0], strict=True)}
    else:
        scores = {name: {"yes": json_safe(float(y)), "no": json_safe(float(n))}
                  for name, y, n in zip(names, trace.label_scores[0], trace.no_scores[0], strict=True)}
    prior = None
    if trace.prior is not None:  # the prior the method divided out (contextual, domain, batch)
        prior = {name: float(p) for name, p in zip(names, trace.prior, strict=True)}

    per_label = thresholds(config)
    model_info = backend.describe()
    return Explanation(
        text=text,
        config={"name": config.name, "source": config.source, "mode": config.decision.mode,
                "direction": scoring.direction, "normalize": scoring.normalize, "aggregate": scoring.aggregate,
                "calibration": scoring.calibration, "threshold": config.decision.threshold,
                "thresholds": per_label if config.decision.mode == "multi" else None, "top_k": config.decision.top_k,
                **({"multi_scoring": config.decision.multi.scoring, "none": config.decision.multi.none}
                   if config.decision.mode == "multi" else {})},
        model=model_info,
        prompts=list(dict.fromkeys(prompt for prompt, _ in clf.prompts(text))),
        truncated=bool(truncated),
        chunks=prediction.n_chunks,
        completions=completions,
        label_scores=scores,
        prior=prior,
        probabilities_uncalibrated={name: float(p) for name, p in zip(names, before, strict=True)},
        probabilities={name: float(p) for name, p in zip(names, after, strict=True)},
        prediction=prediction,
        why=decision_reason(config, prediction, per_label),
        special_tokens=tuple(clf.scorer.template_specials()),
        rerank=rerank,
    )


def decision_reason(config: Config, prediction: Prediction, per_label: dict[str, float]) -> str:
    """Why the decision is what it is, in one sentence."""
    if prediction.abstained:
        return f"abstained: {prediction.reason}"
    probs = prediction.probabilities
    if config.decision.mode == "multi":
        chosen = ", ".join(f"{name} {probs[name]:.3f} >= {per_label[name]:.3f}" for name in prediction.labels)
        return f"label(s) at or above their threshold: {chosen}"
    best = prediction.label
    assert best is not None
    reason = f"{best} has the highest probability, {probs[best]:.3f}"
    if config.decision.threshold > 0:
        reason += f" (at or above the threshold {config.decision.threshold:.3f})"
    if config.decision.top_k > 1:
        reason += f"; top {config.decision.top_k}: " + ", ".join(prediction.labels)
    return reason
