"""A fitted ZeroShotClassifier saved and loaded (pickle, joblib) on a real model (SmolLM2), as
scikit-learn's ``check_estimators_pickle`` does it: every prediction identical after the round trip."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="the sklearn extra is not installed: pip install 'lpclassify[sklearn]'")
joblib = pytest.importorskip("joblib")

from sklearn.base import clone  # noqa: E402

from lpclassify.backends import shared  # noqa: E402
from lpclassify.errors import ModelError  # noqa: E402
from lpclassify.sklearn import LpclassifyVersionWarning, ZeroShotClassifier  # noqa: E402

pytestmark = pytest.mark.model

TEXTS = ["An absolute joy from start to finish.", "Dull, slow and far too long.",
         "I loved every minute of it.", "The worst film I have seen this year.",
         "A warm, funny and moving story.", "Boring characters and a silly plot."]
LABELS = ["positive", "negative"] * 3


def estimator(smollm2: str, **params: object) -> ZeroShotClassifier:
    params.setdefault("n_ctx", 256)
    params.setdefault("threads", 1)
    return ZeroShotClassifier("sentiment", model=smollm2, **params)  # type: ignore[arg-type]


@pytest.mark.parametrize("calibration", ["fitted", "contextual", "domain"])
def test_pickle_and_joblib_round_trips_give_the_same_predictions(calibration: str, smollm2: str,
                                                                 tmp_path: Path) -> None:
    est = estimator(smollm2, calibration=calibration).fit(TEXTS, LABELS)
    proba, labels = est.predict_proba(TEXTS), est.predict(TEXTS)
    blob = pickle.dumps(est)
    assert len(blob) < 200_000  # the recipe and what was fitted, not the model
    loaded = pickle.loads(blob)
    assert "classifier_" not in vars(loaded)  # loading loads no model ...
    np.testing.assert_array_equal(loaded.predict_proba(TEXTS), proba)  # ... the first prediction does
    np.testing.assert_array_equal(loaded.predict(TEXTS), labels)
    np.testing.assert_array_equal(loaded.classes_, est.classes_)
    path = tmp_path / "est.joblib"
    joblib.dump(est, path)
    again = joblib.load(path)
    np.testing.assert_array_equal(again.predict_proba(TEXTS), proba)
    # saved again after loading (and before or after predicting): still the same
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(pickle.loads(blob))).predict_proba(TEXTS), proba)
    assert clone(again).get_params() == est.get_params()


def test_the_model_is_shared_after_loading(smollm2: str) -> None:
    est = estimator(smollm2).fit(TEXTS)
    loaded = pickle.loads(pickle.dumps(est))
    loaded.predict(TEXTS[:1])
    assert loaded.classifier_.backend is est.classifier_.backend  # one model in the process


def test_an_unfitted_estimator_round_trips(smollm2: str) -> None:
    est = pickle.loads(pickle.dumps(estimator(smollm2, calibration="pmi")))
    assert est.get_params() == estimator(smollm2, calibration="pmi").get_params()
    with pytest.raises(sklearn.exceptions.NotFittedError):
        est.predict(TEXTS)


def test_another_version_warns_with_its_fields(smollm2: str) -> None:
    state = estimator(smollm2).fit(TEXTS[:2]).__getstate__()
    state["_lpclassify_version"] = "0.0.1"
    with pytest.warns(LpclassifyVersionWarning) as caught:
        ZeroShotClassifier.__new__(ZeroShotClassifier).__setstate__(state)
    warning = caught[0].message
    assert isinstance(warning, LpclassifyVersionWarning)
    assert warning.original_version == "0.0.1" and warning.estimator_name == "ZeroShotClassifier"


def test_a_model_of_another_size_fails_on_first_use_not_on_load(smollm2: str, tmp_path: Path) -> None:
    copy = tmp_path / "model.gguf"
    copy.write_bytes(Path(smollm2).read_bytes())
    est = estimator(str(copy)).fit(TEXTS[:2])
    blob = pickle.dumps(est)
    shared.release_shared()  # as in a new process
    with open(copy, "ab") as handle:  # "another" model file now lies where the fitted one was
        handle.write(b"\0" * 64)
    loaded = pickle.loads(blob)  # fine: nothing is opened
    with pytest.raises(ModelError, match="bytes"):
        loaded.predict(TEXTS[:1])
    copy.unlink()
    with pytest.raises(ModelError):
        pickle.loads(blob).predict(TEXTS[:1])


def test_a_loaded_model_refuses_to_pickle_and_says_what_to_pickle(smollm2_backend) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match=r"ZeroShotClassifier.*Snapshot"):
        pickle.dumps(smollm2_backend)
