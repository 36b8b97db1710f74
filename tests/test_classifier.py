"""The public classifier on real models: obvious cases, API shapes, multi-label, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lpclassify import Classifier, InputError

pytestmark = pytest.mark.model
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture(scope="module")
def sentiment() -> Classifier:
    # the default model (Gemma 3 270M), as a user gets it
    return Classifier.from_config(CONFIGS / "sentiment.yaml")


def test_obvious_sentiment_on_the_default_model(sentiment: Classifier) -> None:
    positive = sentiment.classify("An absolute joy from start to finish.")
    negative = sentiment.classify("Dull, lifeless and far too long. I hated every minute.")
    assert positive.label == "positive" and positive.probabilities["positive"] > 0.7
    assert negative.label == "negative" and negative.probabilities["negative"] > 0.7
    assert np.isclose(sum(positive.probabilities.values()), 1.0)
    assert {s.completion for s in positive.scores} == {" positive", " Positive", " good", " great",
                                                       " negative", " Negative", " bad", " terrible"}
    assert all(s.logprob < 0 and s.n_tokens >= 1 for s in positive.scores)


def test_sklearn_style_api(sentiment: Classifier) -> None:
    texts = ["Wonderful, moving and funny.", "A tedious mess."]
    assert list(sentiment.classes_) == ["positive", "negative"]
    proba = sentiment.predict_proba(texts)
    predictions = sentiment.classify_many(texts)
    # the same numbers as classify, in classes_ order, and predict is their argmax
    assert proba.tolist() == [[p.probabilities[name] for name in sentiment.classes_] for p in predictions]
    assert sentiment.predict(texts) == [sentiment.classes_[i] for i in proba.argmax(axis=1)] == ["positive",
                                                                                                   "negative"]


def test_probabilities_follow_from_the_completion_scores(sentiment: Classifier) -> None:
    # sentiment.yaml: sum, logsumexp over each label's completions, softmax, contextual calibration
    p = sentiment.classify("Not my cup of tea, but well made.")
    by_label = {name: np.logaddexp.reduce([s.logprob for s in p.scores if s.label == name])
                for name in sentiment.classes_}
    scores = np.array([by_label[name] for name in sentiment.classes_])
    uncalibrated = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    weighted = uncalibrated / sentiment.content_free_prior()
    expected = weighted / weighted.sum()
    np.testing.assert_allclose([p.probabilities[name] for name in sentiment.classes_], expected, rtol=1e-12)


def test_a_shipped_config_by_name_from_python() -> None:
    by_name = Classifier.from_config("sentiment", model="smollm2-135m")
    by_path = Classifier.from_config(CONFIGS / "sentiment.yaml", model="smollm2-135m")
    assert by_name.config == by_path.config and by_name.config.source.endswith("sentiment.yaml")
    text = "An absolute joy from start to finish."
    assert by_name.classify(text) == by_path.classify(text)


def test_two_classifiers_on_one_backend_keep_their_own_prefixes() -> None:
    # each classifier passes its own prompt prefix; alternating must not mix the cached prefixes
    first = Classifier.from_config({"prompt": "Review of a film, in a few words: {text}\nSentiment:",
                                    "labels": ["positive", "negative"]}, model="smollm2-135m")
    second = Classifier(Classifier.from_config("topic", model="smollm2-135m").config, first.backend)
    texts = ["Stocks rallied after the rate cut.", "A late winner in the derby."]
    expected = [first.raw_scores(texts, reference=True), second.raw_scores(texts, reference=True)]
    for _ in range(2):
        for clf, oracle in zip((first, second), expected, strict=True):
            assert np.array_equal(clf.raw_scores(texts).logprobs, oracle.logprobs)  # bit for bit


def test_classify_many_keeps_order_and_matches_one_by_one(sentiment: Classifier) -> None:
    texts = ["Great.", "Awful.", "Fine, I guess.", "Superb acting."]
    together = sentiment.classify_many(texts)
    alone = [sentiment.classify(t) for t in texts]
    for a, b in zip(together, alone, strict=True):
        assert a.label == b.label
        assert a.probabilities == b.probabilities  # bit for bit: a text's scores do not depend on its batch


def test_empty_text_is_an_input_error_by_default(sentiment: Classifier) -> None:
    with pytest.raises(InputError, match="empty text"):
        sentiment.classify("   ")


def test_threshold_abstains_with_a_reason() -> None:
    clf = Classifier.from_config({"prompt": "Review: {text}\nSentiment:", "labels": ["positive", "negative"],
                                  "decision": {"threshold": 0.999}}, model="smollm2-135m")
    p = clf.classify("It was a film.")
    assert p.abstained and p.label is None and "below the threshold 0.999" in (p.reason or "")


QUESTIONS = {"prompt": "Support ticket: {text}\nQuestion: Is this ticket about {label} ({description})? "
                       "Answer yes or no.\nAnswer:",
             "labels": {"billing": {"description": "payments, refunds"}, "bug": {"description": "crashes, errors"},
                        "account": {"description": "login, password"},
                        "shipping": {"description": "delivery, parcels", "threshold": 0.6}},
             "scoring": {"calibration": "none"}, "decision": {"mode": "multi", "threshold": 0.5}}


def test_multi_label_config_decides_each_label() -> None:
    clf = Classifier.from_config(QUESTIONS, model="smollm2-135m")
    p = clf.classify("I was charged twice for my order")
    assert set(p.probabilities) == {"billing", "bug", "account", "shipping"}
    multi = clf.config.decision.multi
    for label in clf.config.labels:  # each label's own question: yes against no, nothing else
        yes = np.logaddexp.reduce([s.logprob for s in p.scores if s.label == label.name and s.completion in multi.yes])
        no = np.logaddexp.reduce([s.logprob for s in p.scores if s.label == label.name and s.completion in multi.no])
        assert p.probabilities[label.name] == pytest.approx(1 / (1 + np.exp(no - yes)), rel=1e-12)
    threshold = {label.name: label.threshold if label.threshold is not None else clf.config.decision.threshold
                 for label in clf.config.labels}
    chosen = sorted((name for name, v in p.probabilities.items() if v >= threshold[name]),
                    key=lambda name: -p.probabilities[name])
    assert list(p.labels) == chosen and p.label == (chosen[0] if chosen else None)


def test_multi_label_with_a_shared_question_thresholds_the_single_label_distribution() -> None:
    single = {"prompt": "Ticket: {text}\nTopic (billing, bug, shipping or other):",
              "labels": ["billing", "bug", "shipping", "other"], "scoring": {"calibration": "contextual"}}
    shared = {**single, "decision": {"mode": "multi", "threshold": 0.2,
                                     "multi": {"scoring": "shared", "none": "other"}}}
    texts = ["The app crashed while I was paying and I was charged twice.", "Thanks, great service!",
             "My parcel never arrived."]
    as_single = Classifier.from_config(single, model="smollm2-135m").classify_many(texts)
    as_multi = Classifier.from_config(shared, model="smollm2-135m").classify_many(texts)
    for one, many in zip(as_single, as_multi, strict=True):
        assert many.probabilities == one.probabilities  # the same scores, calibration and distribution
        chosen = [name for name in sorted(one.probabilities, key=lambda n: -one.probabilities[n])
                  if name != "other" and one.probabilities[name] >= 0.2]
        assert list(many.labels) == chosen and many.abstained == (not chosen)


def test_long_text_is_truncated_and_says_so() -> None:
    clf = Classifier.from_config({"prompt": "Review: {text}\nSentiment:", "labels": ["positive", "negative"],
                                  "runtime": {"n_ctx": 64}}, model="smollm2-135m")
    p = clf.classify("great " * 500)
    assert p.truncated and p.label in {"positive", "negative"}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"batch_size": 0}, r"runtime\.batch_size: expected an integer >= 1"),
    ({"n_ctx": "big"}, r"runtime\.n_ctx: expected an integer"),
    ({"batchsize": 4}, r"runtime\.batchsize: unknown key; did you mean 'batch_size'\?"),
])
def test_runtime_overrides_are_checked_as_the_config_file_is(overrides: dict, message: str) -> None:
    """Keyword overrides go through config validation, before any model is looked for (``model`` names none
    that exists here: the error must come first), in the classifier and in Ray's driver alike."""
    from lpclassify import ConfigError
    from lpclassify.ray import prepare

    with pytest.raises(ConfigError, match=message):
        Classifier.from_config("sentiment", "no-such-model.gguf", **overrides)
    with pytest.raises(ConfigError, match=message):
        prepare("sentiment", "no-such-model.gguf", **overrides)
