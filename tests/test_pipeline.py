"""The one pipeline from scores to probabilities: its trace's parts agree with each other, and every
caller (the classifier, ``explain``) shows the same numbers. Pure maths on a fake backend."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import CharBackend

from lpclassify import Classifier, calibration, pipeline
from lpclassify.config import load_config
from lpclassify.normalize import aggregate, label_bias, normalize, softmax, yes_bias

CONFIG = {"prompt": "Review: {text}\nSentiment:",
          "labels": {"positive": {"completions": [" positive", " good"], "bias": 0.2},
                     "negative": {"completions": [" negative"]}},
          "scoring": {"aggregate": "logsumexp", "temperature": 1.5}}
TEXTS = ["good fun", "bad acting", "plain", "good and bad", "so good", "bad bad", "fine", "dull", "great"]


def classifier(**scoring: object) -> Classifier:
    clf = Classifier(load_config({**CONFIG, "scoring": {**CONFIG["scoring"], **scoring}}),
                     CharBackend(length_penalty=0.1))
    clf.reference_cache_dir = None
    clf.fit_domain(TEXTS)  # domain calibration's inputs (and it switches the method to domain)
    return clf


@pytest.mark.parametrize("method", ["none", "contextual", "domain", "batch", "pmi"])
@pytest.mark.parametrize("norm", ["sum", "mean", "chars"])
def test_a_traces_parts_fit_together(method: str, norm: str) -> None:
    clf = classifier(calibration=method, normalize=norm)
    clf.calibrator.use(method)
    raw = clf.raw_scores(TEXTS)
    trace = clf.calibrator.trace(raw)
    owners = [slot.label for slot in clf.scorer.slots]
    assert np.array_equal(trace.normalized, normalize(raw.logprobs, raw.n_tokens, raw.n_chars, norm))
    assert np.array_equal(trace.label_scores, aggregate(trace.normalized, owners, 2, "logsumexp"))
    assert np.array_equal(trace.uncalibrated, softmax(trace.label_scores))
    assert np.array_equal(trace.uncalibrated, clf.probabilities(raw, calibrate=False))
    assert np.array_equal(trace.probabilities, label_bias(trace.calibrated, (0.2, 0.0), 1.5))
    assert np.array_equal(trace.probabilities, clf.probabilities(raw))
    if method == "pmi":  # the offsets are the neutral text's scores, subtracted before normalization
        assert np.array_equal(trace.offsets, clf.neutral_scores().logprobs[0])
        adjusted = normalize(raw.logprobs - trace.offsets, raw.n_tokens, raw.n_chars, norm)
        assert np.array_equal(trace.method_scores, aggregate(adjusted, owners, 2, "logsumexp"))
    else:
        assert trace.offsets is None and trace.method_scores is trace.label_scores
    expected_prior = {"contextual": lambda: clf.content_free_prior(), "domain": lambda: clf.domain_prior(),
                      "batch": lambda: trace.uncalibrated.mean(axis=0)}.get(method)
    if expected_prior is None:
        assert trace.prior is None
        assert np.array_equal(trace.calibrated, softmax(trace.method_scores))
    else:
        assert np.array_equal(trace.prior, expected_prior())
        assert np.array_equal(trace.calibrated, calibration.apply_prior(trace.uncalibrated, trace.prior))


def test_multi_label_traces_carry_yes_and_no_scores() -> None:
    clf = Classifier(load_config({"prompt": "Ticket: {text}", "labels": {"money": {"bias": 0.5}, "film": None},
                                  "decision": {"mode": "multi"}}), CharBackend())
    raw = clf.raw_scores(TEXTS[:3])
    trace = clf.calibrator.trace(raw)
    assert trace.no_scores is not None and trace.prior is None
    yes = softmax(np.stack([trace.label_scores, trace.no_scores], axis=-1))[..., 0]
    assert np.array_equal(trace.uncalibrated, yes)
    assert np.array_equal(trace.probabilities, yes_bias(yes, (0.5, 0.0)))


def test_run_is_pure_on_plain_arrays() -> None:
    """No classifier, model or disk: arrays, columns, a setting and the reference arrays a method needs."""
    logprobs = np.log(np.array([[0.2, 0.6, 0.2], [0.5, 0.25, 0.25]]))
    scores = pipeline.Arrays(logprobs, np.ones((2, 3)), np.ones(3))
    columns = pipeline.Columns((0, 0, 1), 2)
    neutral = pipeline.Arrays(np.log(np.array([[0.5, 0.25, 0.25]])), np.ones((1, 3)), np.ones(3))
    references = pipeline.References(scores=lambda texts: neutral, content_free=("N/A",))
    trace = pipeline.run(scores, columns, pipeline.Setting(method="contextual"), references)
    prior = softmax(aggregate(neutral.logprobs, (0, 0, 1), 2, "logsumexp"))[0]
    assert np.array_equal(trace.prior, prior)
    np.testing.assert_allclose(trace.probabilities[1], [0.5, 0.5])  # the reference text itself: uniform
    with pytest.raises(ValueError, match="no reference scores"):
        pipeline.run(scores, columns, pipeline.Setting(method="contextual"))


def test_a_memo_works_reference_probabilities_out_once_and_changes_nothing() -> None:
    logprobs = np.log(np.array([[0.2, 0.6, 0.2], [0.5, 0.25, 0.25]]))
    scores = pipeline.Arrays(logprobs, np.ones((2, 3)), np.ones(3))
    columns = pipeline.Columns((0, 0, 1), 2)
    neutral = pipeline.Arrays(np.log(np.array([[0.5, 0.25, 0.25]])), np.ones((1, 3)), np.ones(3))
    asked: list[tuple[str, ...]] = []

    def reference_scores(texts: tuple[str, ...]) -> pipeline.Arrays:
        asked.append(tuple(texts))
        return neutral

    memo: dict = {}
    with_memo = pipeline.References(scores=reference_scores, content_free=("N/A",), memo=memo)
    plain = pipeline.References(scores=lambda texts: neutral, content_free=("N/A",))
    for norm in ("sum", "mean", "sum"):
        setting = pipeline.Setting(normalize=norm, method="contextual")
        assert np.array_equal(pipeline.run(scores, columns, setting, with_memo).probabilities,
                              pipeline.run(scores, columns, setting, plain).probabilities)
    assert asked == [("N/A",), ("N/A",)]  # once per normalization, not once per run
    assert len(memo) == 2 and not next(iter(memo.values())).flags.writeable


def test_explain_shows_the_trace_of_its_method() -> None:
    """explain --json's label scores, prior and both probabilities are the pipeline's trace of that text."""
    for method in ("contextual", "domain", "pmi"):
        clf = classifier(calibration=method)
        clf.calibrator.use(method)
        report = clf.explain("good fun").as_dict()
        trace = clf.calibrator.trace(clf.raw_scores(["good fun"]))
        names = clf.config.label_names
        assert report["label_scores"] == dict(zip(names, trace.label_scores[0].tolist(), strict=True))
        assert report["probabilities_uncalibrated"] == dict(zip(names, trace.uncalibrated[0].tolist(), strict=True))
        assert report["probabilities"] == dict(zip(names, trace.probabilities[0].tolist(), strict=True))
        expected = None if trace.prior is None else dict(zip(names, trace.prior.tolist(), strict=True))
        assert report["prior"] == expected and (expected is not None) == (method != "pmi")
