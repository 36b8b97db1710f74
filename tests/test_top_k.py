"""Exact top-k by best-first search: the same top k, in the same order, as scoring every label.

The maths is checked on synthetic tries (every node's log-probs drawn at random, the engine's
decoding simulated: a branch read reveals the rows along it), then end to end on a real model
against the exhaustive run of the same classifier.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from lpclassify import Classifier
from lpclassify.normalize import aggregate as aggregate_labels
from lpclassify.normalize import log_probabilities, normalize
from lpclassify.slots import Slot
from lpclassify.tokenization import Candidate, EncodedText
from lpclassify.top_k import BestFirst

NodeValues = dict[tuple[int, ...], dict[int, float]]


def calibrated(slots: list[Slot], n_tokens: np.ndarray, n_chars: np.ndarray, norm: str, aggregate: str,
               offsets: np.ndarray):  # type: ignore[no-untyped-def]
    """A pipeline as the classifier's: normalize, aggregate per label, an affine calibration, log-softmax."""
    def label_log_probs(sums: np.ndarray) -> np.ndarray:
        scores = aggregate_labels(normalize(sums, n_tokens, n_chars, norm), [s.label for s in slots], len(offsets),
                                  aggregate)
        return log_probabilities(scores / 0.7 + offsets)
    return label_log_probs


def random_trie(rng: np.random.Generator, n_labels: int) -> tuple[EncodedText, list[int], NodeValues]:
    """Candidates of 1-4 tokens over a small alphabet (so prefixes are shared), 1-2 per label, and
    a log-softmax row at every node."""
    candidates: list[Candidate] = []
    owners: list[int] = []
    seen: set[tuple[int, ...]] = set()
    while len(set(owners)) < n_labels or len(candidates) < n_labels:
        tokens = tuple(int(t) for t in rng.integers(0, 12, size=rng.integers(1, 5)))
        if tokens in seen:
            continue
        seen.add(tokens)
        label = len(set(owners)) if len(set(owners)) < n_labels else int(rng.integers(0, n_labels))
        candidates.append(Candidate(f"c{len(candidates)}", tokens, len(tokens)))
        owners.append(label)
    values: NodeValues = {}
    for candidate in candidates:
        for depth in range(len(candidate.tokens)):
            node = candidate.tokens[:depth]
            if node not in values:
                logits = rng.normal(0.0, 3.0, size=12)
                logp = logits - np.log(np.exp(logits).sum())
                values[node] = {t: float(logp[t]) for t in range(12)}
    return EncodedText((1, 2, 3), tuple(candidates)), owners, values


def simulate(search: BestFirst, values: NodeValues) -> int:
    """Drive a search as the engine does: the prompt's row first, then each chosen branch's rows."""
    read: NodeValues = {(): values[()]}
    decodes = 1
    while (leaf := search(read)) is not None:
        decodes += 1
        for depth in range(len(leaf) + 1):
            read[leaf[:depth]] = values[leaf[:depth]]
        assert decodes < 10_000
    return decodes


@pytest.mark.parametrize("norm", ["sum", "mean", "chars"])
@pytest.mark.parametrize("aggregate", ["logsumexp", "max"])
def test_the_search_finds_the_exhaustive_top_k_and_bounds_the_rest(norm: str, aggregate: str) -> None:
    rng = np.random.default_rng(7)
    for trial in range(20):
        n_labels = int(rng.integers(3, 40))
        text, owners, values = random_trie(rng, n_labels)
        slots = [Slot(label, str(label), c.completion) for label, c in zip(owners, text.candidates, strict=True)]
        n_tokens = np.array([len(c.tokens) for c in text.candidates])
        n_chars = rng.integers(1, 12, size=len(slots))
        offsets = rng.normal(0.0, 2.0, size=n_labels)  # a per-label affine calibration keeps the bound
        label_log_probs = calibrated(slots, n_tokens, n_chars, norm, aggregate, offsets)

        full = np.array([sum(values[c.tokens[:d]][c.tokens[d]] for d in range(len(c.tokens)))
                         for c in text.candidates])
        exhaustive = np.exp(label_log_probs(full))
        k = int(rng.integers(1, 4))
        search = BestFirst(text, owners, k, label_log_probs)
        simulate(search, values)
        outcome = search.outcome()
        order = np.argsort(-outcome.log_probs, kind="stable")[:k]
        assert order.tolist() == np.argsort(-exhaustive, kind="stable")[:k].tolist(), trial
        assert outcome.exact[order].all()
        got = np.exp(outcome.log_probs)
        # exact labels: low by at most tolerance times themselves; every other label under its bound
        exact = outcome.exact
        assert np.all(got[exact] <= exhaustive[exact] * (1 + 1e-12))
        assert np.all(exhaustive[exact] - got[exact] <= got[exact] * outcome.tolerance + 1e-15)
        assert np.all(exhaustive <= outcome.bounds() * (1 + 1e-12))


def test_a_tolerance_makes_the_search_go_on_until_the_probabilities_are_that_close() -> None:
    rng = np.random.default_rng(3)
    text, owners, values = random_trie(rng, 30)
    n_labels = 30
    slots = [Slot(label, str(label), c.completion) for label, c in zip(owners, text.candidates, strict=True)]

    def label_log_probs(sums: np.ndarray) -> np.ndarray:
        return log_probabilities(aggregate_labels(sums, [s.label for s in slots], n_labels, "logsumexp"))

    loose, tight = BestFirst(text, owners, 1, label_log_probs), BestFirst(text, owners, 1, label_log_probs,
                                                                           tolerance=1e-6)
    assert simulate(loose, values) <= simulate(tight, values)
    assert tight.outcome().tolerance <= 1e-6


# ---------------------------------------------------------------- on a real model

SUPPORT = ["card arrival", "card activation", "card declined", "card lost", "card stolen", "card fees",
           "transfer pending", "transfer failed", "transfer fees", "transfer limits", "refund request",
           "refund status", "account closed", "account locked", "account verification", "password reset",
           "exchange rate", "cash withdrawal", "direct debit", "top up failed", "pin blocked", "country support",
           "wrong amount charged", "duplicate payment", "contactless not working"]
MESSAGES = ["My new card still hasn't come in the post, it's been two weeks.",
            "I was charged twice for the same coffee this morning.",
            "How do I change my PIN? It says it's blocked after three tries.",
            "The money I sent to my sister yesterday still shows as pending."]


@pytest.mark.model
@pytest.mark.parametrize(("calibration", "norm"), [("contextual", "mean"), ("pmi", "sum")])
def test_top_k_search_on_a_model_matches_the_exhaustive_run(gemma_backend, calibration: str, norm: str) -> None:
    config = {"prompt": "Customer message: {text}\nThe customer's issue:", "labels": SUPPORT,
              "scoring": {"calibration": calibration, "normalize": norm}, "decision": {"top_k": 3}}
    exhaustive = Classifier.from_config(config, backend=gemma_backend)
    searched = Classifier.from_config({**config, "scoring": {**config["scoring"], "search": "top_k"}},
                                      backend=gemma_backend)
    before = gemma_backend.stats.tokens_decoded
    want = exhaustive.classify_many(MESSAGES[:3])
    full_tokens = gemma_backend.stats.tokens_decoded - before
    before = gemma_backend.stats.tokens_decoded
    got = searched.classify_many(MESSAGES[:3])
    searched_tokens = gemma_backend.stats.tokens_decoded - before
    for w, g in zip(want, got, strict=True):
        assert g.labels == w.labels  # the same top 3, in the same order
        assert g.tolerance is not None
        for name, p in g.probabilities.items():
            assert p <= w.probabilities[name] * (1 + 1e-9)
            assert w.probabilities[name] - p <= p * g.tolerance + 1e-12
        for name, bound in g.pruned.items():
            assert w.probabilities[name] <= bound * (1 + 1e-9)
    assert searched_tokens < full_tokens  # branches were pruned


@pytest.mark.model
def test_batch_calibration_falls_back_to_the_exhaustive_search_with_a_notice(gemma_backend, caplog) -> None:
    config = {"prompt": "Customer message: {text}\nThe customer's issue:", "labels": SUPPORT[:6],
              "scoring": {"calibration": "batch", "search": "top_k"}}
    clf = Classifier.from_config(config, backend=gemma_backend)
    with caplog.at_level(logging.WARNING, logger="lpclassify"):
        predictions = clf.classify_many(MESSAGES[:2])
    notices = [r.getMessage() for r in caplog.records if "falls back" in r.getMessage()]
    assert len(notices) == 1 and "batch" in notices[0]
    assert all(p.tolerance is None and set(p.probabilities) == set(SUPPORT[:6]) for p in predictions)
