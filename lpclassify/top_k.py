"""Exact top-k without scoring every label: a best-first walk of one text's candidate trie.

Every token's log-prob is <= 0, so the summed log-prob of a partly read completion bounds the
completion's full score from above; so does its bound divided by the completion's known length
(``normalize: mean`` / ``chars``). Label aggregation (logsumexp, max), PMI's per-completion
offsets, and per-label affine calibration (a contextual or domain prior, fitted bias and
temperature) are monotone in each label's own scores, so pushing the bounds through the
classifier's own pipeline bounds every label's calibrated log-probability *relative to the
others*. When the k labels with the highest values are all read in full, nothing else can
enter the top k, and the search stops.

>>> from lpclassify.tokenization import Candidate, EncodedText
>>> text = EncodedText((1,), (Candidate(" a", (5,), 1), Candidate(" bc", (6, 7), 2)))
>>> def label_log_probs(bounds):  # no calibration: log-softmax of the summed log-probs
...     return bounds - np.log(np.exp(bounds).sum())
>>> search = BestFirst(text, [0, 1], 1, label_log_probs)
>>> search({(): {5: -0.1, 6: -2.3}})  # " a" is read in full and beats the bound on " bc"
>>> search.outcome().exact.tolist(), search.outcome().tolerance < 0.12
([True, False], True)

The probabilities of the labels read in full are the classifier's, up to the mass of the
labels never finished: with ``q`` the bound on that mass (a share of the total), each
reported probability ``p`` is low by at most ``p * q / (1 - q)`` (:attr:`Outcome.tolerance`
is ``q / (1 - q)``). ``tolerance`` makes the search go on until that bound is met.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .decision import Prediction
from .normalize import safe_log
from .scores import CompletionScore, RawScores
from .slots import completion_chars
from .tokenization import EncodedText

if TYPE_CHECKING:
    from .config import Config
    from .inputs import Input
    from .scorer import Scorer

# Calibrations that move each label's score on its own, monotonically: they keep the bounds.
SEPARABLE = frozenset({"none", "contextual", "domain", "pmi", "fitted"})

NodeValues = dict[tuple[int, ...], dict[int, float]]  # trie node -> token -> log p, as the engine reads them


@dataclass(frozen=True)
class Outcome:
    """Where a text's search stopped: calibrated label log-probabilities (exact labels' values are
    the classifier's up to ``tolerance``; the others' are upper bounds) and which labels are exact."""

    log_probs: np.ndarray  # (n_labels,)
    exact: np.ndarray  # (n_labels,) bool: every completion of the label read in full
    tolerance: float  # relative: each exact label's probability is low by at most this share of itself

    def bounds(self) -> np.ndarray:
        """Upper bounds on every label's probability (exact labels: their probability's upper end)."""
        return np.exp(self.log_probs) * (1.0 + self.tolerance)


class BestFirst:
    """Chooses, after each decode, the next branch of one text's trie (the engine's chooser).

    ``owners[i]``: the label of candidate ``i``; ``label_log_probs``: raw summed log-probs of
    every candidate (upper bounds where unfinished) -> calibrated label log-probabilities.
    """

    def __init__(self, text: EncodedText, owners: Sequence[int], k: int,
                 label_log_probs: Callable[[np.ndarray], np.ndarray], *, tolerance: float | None = None) -> None:
        self.candidates = text.candidates
        self.owners = np.asarray(owners)
        self.n_labels = int(self.owners.max()) + 1 if len(self.owners) else 0
        self.k = min(k, self.n_labels)
        self.label_log_probs = label_log_probs
        self.tolerance = tolerance
        self._sums = np.zeros(len(self.candidates))  # summed log-probs read so far
        self._done = np.array([c.n_scored == 0 for c in self.candidates])
        self._depth = [len(c.tokens) - c.n_scored for c in self.candidates]  # next depth to read
        self._outcome: Outcome | None = None
        self.steps = 0

    def _read(self, values: NodeValues) -> None:
        """Add what the last decode read to every unfinished candidate's sum."""
        for i in np.flatnonzero(~self._done):
            tokens, depth = self.candidates[i].tokens, self._depth[i]
            while depth < len(tokens) and (row := values.get(tokens[:depth])) is not None:
                self._sums[i] += row[tokens[depth]]
                depth += 1
            self._depth[i] = depth
            self._done[i] = depth == len(tokens)

    def outcome(self) -> Outcome:
        if self._outcome is None:
            raise RuntimeError("the search has not run")
        return self._outcome

    def __call__(self, values: NodeValues) -> tuple[int, ...] | None:
        """The fed node to decode through next, or None when the top k is certain."""
        self.steps += 1
        self._read(values)
        log_probs = np.asarray(self.label_log_probs(self._sums), dtype=np.float64)
        exact = np.ones(self.n_labels, dtype=bool)
        np.logical_and.at(exact, self.owners, self._done)
        probs = np.exp(log_probs)
        open_mass = float(probs[~exact].sum())
        tolerance = open_mass / max(1.0 - open_mass, 1e-300)
        self._outcome = Outcome(log_probs, exact, tolerance)
        order = np.argsort(-log_probs, kind="stable")
        if exact[order[: self.k]].all() and (self.tolerance is None or tolerance <= self.tolerance):
            return None
        label = int(next(i for i in order if not exact[i]))  # the best label still open
        mine = np.flatnonzero((self.owners == label) & ~self._done)
        best = int(mine[np.argmax(self._sums[mine])])
        return self.candidates[best].tokens[:-1]  # its whole branch: one decode finishes it


def predict(names: Sequence[str], outcome: Outcome, *, k: int, threshold: float, scores: Sequence[CompletionScore] = (),
            truncated: bool = False) -> Prediction:
    """A text's prediction from where its search stopped: the top k (all exact), abstaining as
    :func:`~lpclassify.decision.decide_single` does when the top probability is under ``threshold``."""
    probs = np.exp(outcome.log_probs)
    order = [int(i) for i in np.argsort(-outcome.log_probs, kind="stable")]
    exact = {names[i]: float(probs[i]) for i in order if outcome.exact[i]}
    bounds = outcome.bounds()
    pruned = {names[i]: float(bounds[i]) for i in order if not outcome.exact[i]}
    best = order[0]
    common = {"scores": tuple(scores), "truncated": truncated, "pruned": pruned, "tolerance": outcome.tolerance}
    if probs[best] < threshold:
        reason = f"top probability {probs[best]:.3f} ({names[best]}) is below the threshold {threshold:.3f}"
        return Prediction(None, exact, (), True, reason, **common)
    return Prediction(names[best], exact, tuple(names[i] for i in order[:k]), **common)


def searchable(config: Config) -> str | None:
    """Why ``config``'s top-k cannot be searched (None: it can): the bounds need single-label
    mode and a calibration that moves each label's score on its own."""
    if config.decision.mode != "single":
        return "multi-label mode decides every label on its own"
    if config.scoring.rerank is not None:
        return "scoring.rerank reads every label's probability to choose the labels it scores again"
    if config.scoring.calibration not in SEPARABLE:
        return f"calibration '{config.scoring.calibration}' needs every label's full score"
    return None


class Searchable(Protocol):
    """What the search needs of a classifier (a protocol, so this module does not import the classifier)."""

    @property
    def config(self) -> Config: ...

    @property
    def scorer(self) -> Scorer: ...

    def raw_scores(self, texts: Sequence[Input]) -> RawScores: ...

    def probabilities(self, raw: RawScores) -> np.ndarray: ...

    def decide(self, raw: RawScores) -> list[Prediction]: ...


def search_predictions(clf: Searchable, texts: Sequence[Input]) -> list[Prediction]:
    """Classify ``texts`` with a best-first search per text (``scoring.search: top_k``).

    A backend without a search (or a text scored in several windows) scores every label; the
    predictions are then the usual ones.
    """
    config = clf.config
    if config.decision.top_k >= len(config.labels):  # nothing can be pruned
        return clf.decide(clf.raw_scores(texts))
    slots = clf.scorer.slots
    owners = [slot.label for slot in slots]
    n_chars = np.array(completion_chars(slots))
    searches: list[BestFirst] = []

    def choose(encoded: EncodedText) -> BestFirst:
        n_tokens = np.array([[candidate.n_scored for candidate in encoded.candidates]])

        def label_log_probs(sums: np.ndarray) -> np.ndarray:
            raw = RawScores(sums[None, :], n_tokens, n_chars, np.zeros(1, dtype=bool), [()])
            return safe_log(clf.probabilities(raw))[0]

        search = BestFirst(encoded, owners, config.decision.top_k, label_log_probs,
                           tolerance=config.scoring.tolerance)
        searches.append(search)
        return search

    raw = clf.scorer.raw_scores(texts, choose=choose)
    if len(searches) != len(texts):
        return clf.decide(raw)
    return [predict(config.label_names, search.outcome(), k=config.decision.top_k,
                    threshold=config.decision.threshold, scores=raw.scores[i], truncated=bool(raw.truncated[i]))
            for i, search in enumerate(searches)]
