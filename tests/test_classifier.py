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
    assert proba.shape == (2, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert sentiment.predict(texts) == [sentiment.classes_[i] for i in proba.argmax(axis=1)]


def test_classify_many_keeps_order_and_matches_one_by_one(sentiment: Classifier) -> None:
    texts = ["Great.", "Awful.", "Fine, I guess.", "Superb acting."]
    together = sentiment.classify_many(texts)
    alone = [sentiment.classify(t) for t in texts]
    for a, b in zip(together, alone):
        assert a.label == b.label
        assert all(np.isclose(a.probabilities[k], b.probabilities[k], atol=1e-9) for k in a.probabilities)


def test_empty_text_is_an_input_error_by_default(sentiment: Classifier) -> None:
    with pytest.raises(InputError, match="empty text"):
        sentiment.classify("   ")


def test_threshold_abstains_with_a_reason() -> None:
    clf = Classifier.from_config({"prompt": "Review: {text}\nSentiment:", "labels": ["positive", "negative"],
                                  "decision": {"threshold": 0.999}}, model="smollm2-135m")
    p = clf.classify("It was a film.")
    assert p.abstained and p.label is None and "below the threshold 0.999" in (p.reason or "")


def test_multi_label_config_decides_each_label() -> None:
    clf = Classifier.from_config(CONFIGS / "support_tags.yaml", model="smollm2-135m")
    p = clf.classify("I was charged twice for my order")
    assert set(p.probabilities) == {"billing", "bug", "account", "shipping"}
    assert all(0.0 <= v <= 1.0 for v in p.probabilities.values())
    assert set(p.labels) <= set(p.probabilities)


def test_long_text_is_truncated_and_says_so() -> None:
    clf = Classifier.from_config({"prompt": "Review: {text}\nSentiment:", "labels": ["positive", "negative"],
                                  "runtime": {"n_ctx": 64}}, model="smollm2-135m")
    p = clf.classify("great " * 500)
    assert p.truncated and p.label in {"positive", "negative"}
