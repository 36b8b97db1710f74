"""The scikit-learn estimator on a real model (SmolLM2): clone, Pipeline, GridSearchCV, cross_val_score."""

from __future__ import annotations

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="the sklearn extra is not installed: pip install 'lpclassify[sklearn]'")

from sklearn.base import clone  # noqa: E402
from sklearn.calibration import CalibratedClassifierCV  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402

from lpclassify.backends import shared  # noqa: E402
from lpclassify.sklearn import ZeroShotClassifier, as_texts  # noqa: E402

pytestmark = pytest.mark.model

TEXTS = ["An absolute joy from start to finish.", "Dull, slow and far too long.",
         "I loved every minute of it.", "The worst film I have seen this year.",
         "A warm, funny and moving story.", "Boring characters and a silly plot.",
         "Brilliant acting and a great script.", "I walked out after half an hour, awful.",
         "A delightful surprise, highly recommended.", "Tedious and badly written.",
         "Beautiful, clever and touching.", "A complete waste of time and money."]
LABELS = ["positive", "negative"] * 6
GOOD_PROMPT = "Review: {text}\nSentiment:"
BAD_PROMPT = "{text}\nThe number of words in this text is"
CV = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)


def estimator(smollm2: str, **params: object) -> ZeroShotClassifier:
    params.setdefault("n_ctx", 256)
    return ZeroShotClassifier("sentiment", model=smollm2, **params)  # type: ignore[arg-type]


def strip_texts(texts: list[str]) -> list[str]:
    return [t.strip() for t in texts]


def test_init_only_stores_and_get_params_round_trips() -> None:
    est = ZeroShotClassifier({"prompt": "{text} ->", "labels": ["a", "b"]}, prompt="nonsense without a placeholder")
    # nothing is validated or loaded before fit: a bad prompt fails there, with the config's message
    assert est.get_params()["prompt"] == "nonsense without a placeholder"
    with pytest.raises(Exception, match=r"prompt: the template must contain \{text\}"):
        est.fit(["x"])
    assert not hasattr(est, "classes_")


def test_parameters_override_only_what_they_name() -> None:
    config = {"prompt": "{text} ->", "labels": {"a": {"bias": 0.5}, "b": None},
              "scoring": {"calibration": "pmi", "content_free": ["-"], "temperature": 2.0},
              "search": {"prompts": ["{text} =>"]}}
    resolved = ZeroShotClassifier(config, prompt="Text: {text}\nLabel:", normalize="mean", threshold=0.3,
                                  batch_size=4).resolved_config()
    assert (resolved.prompt, resolved.scoring.normalize, resolved.decision.threshold) == \
        ("Text: {text}\nLabel:", "mean", 0.3)
    assert resolved.runtime.batch_size == 4 and resolved.scoring.calibration == "pmi"
    assert resolved.labels[0].bias == 0.5 and resolved.scoring.temperature == 2.0  # the rest is kept
    assert resolved.scoring.content_free == ("-",) and resolved.search.prompts == ("{text} =>",)
    with pytest.raises(Exception, match=r"scoring\.normalize: expected one of"):
        ZeroShotClassifier(config, normalize="median").resolved_config()


def test_clone_gives_an_unfitted_equal_estimator(smollm2: str) -> None:
    est = estimator(smollm2, calibration="contextual").fit(TEXTS[:2])
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "classifier_") and hasattr(est, "classifier_")


def test_predict_returns_an_array_and_score_is_accuracy(smollm2: str) -> None:
    est = estimator(smollm2, calibration="contextual").fit(TEXTS)
    predicted = est.predict(TEXTS)
    assert isinstance(predicted, np.ndarray) and predicted.shape == (len(TEXTS),)
    assert list(est.classes_) == ["negative", "positive"]  # sorted, as scikit-learn expects
    proba = est.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert list(est.classes_[proba.argmax(axis=1)]) == list(predicted)  # columns follow classes_
    assert est.score(TEXTS, LABELS) == pytest.approx(np.mean(predicted == np.array(LABELS, dtype=object)))
    assert est.score(TEXTS, LABELS) >= 0.75  # a real model on easy reviews


def test_abstentions_come_back_as_abstain_label(smollm2: str) -> None:
    est = estimator(smollm2, threshold=0.999999, abstain_label="unsure").fit(TEXTS)
    assert set(est.predict(TEXTS)) == {"unsure"}
    with pytest.raises(ValueError, match="also a label"):
        estimator(smollm2, abstain_label="positive").fit(TEXTS)


def test_fitted_calibration_learns_from_y_and_needs_it(smollm2: str) -> None:
    est = estimator(smollm2, calibration="fitted").fit(TEXTS, LABELS)
    assert est.classifier_.fitted_ is not None and est.classifier_.fitted_.n_examples == len(TEXTS)
    with pytest.raises(ValueError, match="fit\\(X, y\\)"):
        clone(est).fit(TEXTS)
    with pytest.raises(ValueError, match="not labels of the config"):
        clone(est).fit(TEXTS, ["good"] * len(TEXTS))


def test_models_are_shared_across_fits(smollm2: str) -> None:
    est = estimator(smollm2).fit(TEXTS[:2])
    again = clone(est).set_params(calibration="pmi").fit(TEXTS[:2])
    assert again.classifier_.backend is est.classifier_.backend
    assert estimator(smollm2, n_ctx=320).fit(TEXTS[:2]).classifier_.backend is not est.classifier_.backend


def test_cross_val_score(smollm2: str) -> None:
    scores = cross_val_score(estimator(smollm2, calibration="fitted"), TEXTS, LABELS, cv=CV)
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    assert scores.mean() >= 0.6


def test_grid_search_over_prompt_and_calibration_in_a_pipeline(smollm2: str) -> None:
    loaded = shared.loaded_count()
    pipe = make_pipeline(FunctionTransformer(strip_texts), estimator(smollm2))
    grid = GridSearchCV(pipe, {"zeroshotclassifier__prompt": [BAD_PROMPT, GOOD_PROMPT],
                               "zeroshotclassifier__calibration": ["none", "contextual"]}, cv=CV)
    grid.fit(TEXTS, LABELS)
    scores = grid.cv_results_["mean_test_score"]
    assert len(scores) == 4 and grid.best_score_ == max(scores)
    best = grid.best_estimator_[-1]  # refit with the winning parameters, which reached the classifier
    assert best.classifier_.config.prompt == grid.best_params_["zeroshotclassifier__prompt"]
    assert best.classifier_.config.scoring.calibration == grid.best_params_["zeroshotclassifier__calibration"]
    assert len(set(grid.cv_results_["param_zeroshotclassifier__prompt"])) == 2
    assert shared.loaded_count() <= max(loaded, 1) + 1  # 12 fits, one model load at most


def test_calibrated_classifier_cv(smollm2: str) -> None:
    calibrated = CalibratedClassifierCV(estimator(smollm2), cv=CV, method="sigmoid").fit(TEXTS, LABELS)
    proba = calibrated.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), 2) and np.allclose(proba.sum(axis=1), 1.0)


def test_as_texts_accepts_what_scikit_learn_passes() -> None:
    assert as_texts(np.array([["a"], ["b"]], dtype=object)) == ["a", "b"]
    assert as_texts(("a", "b")) == ["a", "b"]
    with pytest.raises(ValueError, match="one string"):
        as_texts("abc")
    with pytest.raises(ValueError, match="strings"):
        as_texts([1, 2])


@pytest.mark.parametrize("shipped", ["sentiment_chat", "entailment", "sentiment"])
def test_the_estimator_keeps_chat_prompts_and_examples_of_its_config(shipped: str) -> None:
    from lpclassify.config import load_config

    assert ZeroShotClassifier(shipped).resolved_config() == load_config(shipped)
