"""``scoring.rerank``: direct scoring's few most likely labels scored again the other way round.

Direct scoring (P(label | input)) ranks every label cheaply from one decode of the prompt; channel
scoring (P(input | label), :mod:`lpclassify.config.direction`) costs a decode of the input per
label. A rerank asks the channel question of direct scoring's ``top`` labels only, and decides
among them by a product of experts::

    score(label) = log p_direct(label) + weight * log p_channel(input | label)

where ``p_direct`` is the calibrated probability and ``p_channel`` the input's likelihood after the
label (the config's prompt turned round by :func:`~lpclassify.config.direction.channel_template`,
normalize ``sum``, a label's phrasings a uniform mixture). The ``top`` labels share the probability
direct scoring gave them, in proportion to ``exp(score)``; every other label keeps its own.
The channel log-likelihoods ride along with the raw scores (:attr:`RawScores.rerank`, NaN for a
label not reranked), so every consumer of raw scores (decisions, ``explain``, evaluation, the
server) reads the same numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .backends.base import Backend
from .config import Config
from .config.direction import as_channel, verbalization
from .inputs import Input
from .normalize import aggregate, safe_log
from .scorer import Scorer
from .scores import RawScores

# Channel scorers kept, one per set of labels reranked together (cheap to build: a prompt and its tokens).
MAX_SCORERS = 256


def channel_config(config: Config) -> Config:
    """The config the rerank stage scores with: ``config`` turned round, no calibration (a label's
    prior is the direct probability it already has)."""
    plain = replace(config, scoring=replace(config.scoring, rerank=None, calibration="none", normalize="sum",
                                            search="exhaustive"),
                    decision=replace(config.decision, top_k=1), search=replace(config.search, prompts=()))
    return with_demo_answers(as_channel(plain))


def with_demo_answers(config: Config) -> Config:
    """Each demonstration with its ``{label}`` written in: a scorer of a few top labels then renders every
    demonstration as the whole config does, whichever labels it scores (``prompts.py`` reads it)."""
    answers = {label.name: verbalization(label.completions[0]) for label in config.labels}
    examples = tuple(replace(example, fields=(*example.fields, ("label", answers[example.labels[0]])))
                     for example in config.examples)
    return replace(config, examples=examples)


class Reranker:
    """Channel scores of each text's ``top`` direct labels (one channel scorer per distinct label set)."""

    def __init__(self, config: Config, backend: Backend, lock: threading.Lock) -> None:
        assert config.scoring.rerank is not None
        self.top = min(config.scoring.rerank.top, len(config.labels))
        self.weight = config.scoring.rerank.weight
        self.config = channel_config(config)
        self.backend = backend
        self._lock = lock  # the direct scorer's: one model call at a time on the shared backend
        self._scorers: dict[tuple[int, ...], Scorer] = {}

    def scorer(self, labels: tuple[int, ...]) -> Scorer:
        """The channel scorer of a set of labels (by index, in config order)."""
        found = self._scorers.get(labels)
        if found is None:
            if len(self._scorers) >= MAX_SCORERS:  # a long-running server meets many label sets: keep a few
                self._scorers.clear()
            sub = replace(self.config, labels=tuple(self.config.labels[j] for j in labels))
            found = self._scorers[labels] = Scorer(sub, self.backend, lock=self._lock)
        return found

    def scores(self, texts: Sequence[Input], probabilities: np.ndarray, *, reference: bool = False) -> np.ndarray:
        """(n_texts, n_labels): log p(text | label) for each text's ``top`` most probable labels, NaN
        elsewhere. Texts whose top labels are the same set are scored together."""
        out = np.full(probabilities.shape, np.nan)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, row in enumerate(probabilities):
            top = np.argsort(-row, kind="stable")[:self.top]
            groups.setdefault(tuple(sorted(int(j) for j in top)), []).append(i)
        for labels, rows in groups.items():
            scorer = self.scorer(labels)
            raw = scorer.raw_scores([texts[i] for i in rows], reference=reference)
            out[np.ix_(rows, labels)] = label_loglik(raw, scorer)
        return out


def label_loglik(raw: RawScores, scorer: Scorer) -> np.ndarray:
    """Each label's log-likelihood of the input: its phrasings' summed log-probs, combined as
    channel scoring combines them (``logsumexp``: their mean likelihood; ``max``: the best)."""
    return aggregate(raw.logprobs, [slot.label for slot in scorer.slots], len(scorer.config.labels),
                     scorer.config.scoring.label_aggregate)


def combine(probabilities: np.ndarray, channel: np.ndarray, weight: float) -> np.ndarray:
    """Direct probabilities with the reranked labels' share redistributed by the product of experts
    (``channel``: NaN for a label not reranked, which keeps its probability)."""
    out = probabilities.copy()
    for i, row in enumerate(channel):
        top = np.flatnonzero(~np.isnan(row))
        if not len(top):
            continue
        score = safe_log(probabilities[i, top]) + weight * row[top]
        share = np.exp(score - score.max())
        out[i, top] = probabilities[i, top].sum() * share / share.sum()
    return out
