"""A scikit-learn estimator: :class:`ZeroShotClassifier`, clone-able, for pipelines and model selection.

>>> from sklearn.model_selection import GridSearchCV                             # doctest: +SKIP
>>> from lpclassify.sklearn import ZeroShotClassifier                            # doctest: +SKIP
>>> search = GridSearchCV(ZeroShotClassifier("sentiment", model="smollm2-135m"),  # doctest: +SKIP
...                       {"calibration": ["contextual", "fitted"], "normalize": ["sum", "mean"]}, cv=3)
>>> search.fit(texts, labels).best_params_                                        # doctest: +SKIP

scikit-learn's conventions, kept: ``__init__`` only stores its (flat) parameters, so ``clone``,
``get_params``/``set_params`` and grid search over any of them (``prompt`` and ``calibration``
included) work; ``fit(X, y=None)`` builds the classifier, sets ``classes_`` (the config's label
names, sorted as scikit-learn expects; ``predict_proba``'s columns follow them) and fits
what needs data (``calibration="fitted"`` its bias and temperature from ``y``; ``"domain"``
its prior from ``X``); ``predict`` returns an array of label names, ``abstain_label``
where the classifier abstained. ``X`` is a sequence of texts (a list, a 1-D array, a pandas
Series or a one-column 2-D array). Models are shared in the process by (model file, runtime
settings) (:mod:`lpclassify.backends.shared`): a grid search loads each once.

A fitted estimator pickles (``pickle``, ``joblib.dump``) without its model: what it keeps is
the recipe (its parameters, the config, the model's name and size) and what it fitted or scored
(a :class:`lpclassify.ray.Snapshot`: reference scores, calibration state). Loading it loads no
model; the first prediction reopens the model through the process's shared backends, refuses
a model file of another size, and predicts exactly what the pickled estimator did.

Needs the ``sklearn`` extra: ``pip install 'lpclassify[sklearn]'``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .classifier import Classifier
from .config import Config, load_config, parse_config
from .config.dump import prompt_data
from .errors import MissingDependencyError, ModelError

if TYPE_CHECKING:
    from .ray import Snapshot

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.validation import check_is_fitted
except ImportError:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("lpclassify.sklearn needs scikit-learn: pip install 'lpclassify[sklearn]'") from None

ConfigSpec = str | Path | Mapping[str, Any] | Config


class LpclassifyVersionWarning(UserWarning):
    """A pickled estimator is loaded by another lpclassify version than the one that saved it.

    ``estimator_name``, ``original_version`` and ``current_version`` say which (as scikit-learn's
    ``InconsistentVersionWarning`` does), so a caller can escalate it to an error.
    """

    def __init__(self, *, estimator_name: str, original_version: str, current_version: str) -> None:
        self.estimator_name = estimator_name
        self.original_version = original_version
        self.current_version = current_version
        super().__init__(f"{estimator_name} was saved with lpclassify {original_version} and is loaded with "
                         f"{current_version}: its predictions may differ; refit it to be sure")


class ZeroShotClassifier(ClassifierMixin, BaseEstimator):
    """Zero-shot classification as a scikit-learn classifier (see the module docstring).

    Parameters left ``None`` keep the config's value. ``config``: a path, a shipped config's
    name or a mapping; ``model``: a registry name or a ``.gguf`` path; ``prompt``: a template
    replacing the config's; ``normalize``, ``aggregate``, ``calibration``: ``scoring.*``;
    ``threshold``: ``decision.threshold`` (abstain under it); ``abstain_label``: what
    :meth:`predict` returns for an abstention; ``n_ctx``, ``batch_size``, ``threads``,
    ``n_gpu_layers``: ``runtime.*``.
    """

    def __init__(self, config: ConfigSpec = "sentiment", *, model: str | None = None, prompt: str | None = None,
                 normalize: str | None = None, aggregate: str | None = None, calibration: str | None = None,
                 threshold: float | None = None, abstain_label: str = "abstain", n_ctx: int | None = None,
                 batch_size: int | None = None, threads: int | None = None,
                 n_gpu_layers: int | None = None) -> None:
        self.config = config
        self.model = model
        self.prompt = prompt
        self.normalize = normalize
        self.aggregate = aggregate
        self.calibration = calibration
        self.threshold = threshold
        self.abstain_label = abstain_label
        self.n_ctx = n_ctx
        self.batch_size = batch_size
        self.threads = threads
        self.n_gpu_layers = n_gpu_layers

    # ------------------------------------------------------------------ building

    def resolved_config(self) -> Config:
        """The config with this estimator's parameters applied, each checked as the config file's would be."""
        base = load_config(self.config)
        scoring = {"normalize": self.normalize, "aggregate": self.aggregate, "calibration": self.calibration}
        decision = {"mode": base.decision.mode, **({"threshold": self.threshold} if self.threshold is not None else {})}
        runtime = {"n_ctx": self.n_ctx, "batch_size": self.batch_size, "threads": self.threads,
                   "n_gpu_layers": self.n_gpu_layers}
        # The overrides alone, validated by the config parser (same messages, same limits) ...
        checked = parse_config({"prompt": self.prompt if self.prompt is not None else prompt_data(base.prompt),
                                "labels": list(base.label_names), "model": self.model or base.model,
                                # the config's direction decides which placeholders the prompt may use
                                "scoring": {"direction": base.scoring.direction,
                                            **{k: v for k, v in scoring.items() if v is not None}},
                                "decision": decision,
                                "runtime": {k: v for k, v in runtime.items() if v is not None}}, source=base.source)
        # ... then applied to the config, so that everything else in it is kept as it is.
        config = replace(base, prompt=checked.prompt, model=checked.model,
                         scoring=overridden(base.scoring, checked.scoring, scoring),
                         decision=overridden(base.decision, checked.decision, {"threshold": self.threshold}),
                         runtime=overridden(base.runtime, checked.runtime, runtime))
        if config.decision.mode != "single":
            raise ValueError("ZeroShotClassifier is for single-label configs (decision.mode: single)")
        if self.abstain_label in config.label_names:
            raise ValueError(f"abstain_label {self.abstain_label!r} is also a label of the config; choose another")
        return config

    def fit(self, X: Any, y: Any = None) -> ZeroShotClassifier:
        """Build the classifier; fit what needs data (``fitted``: bias/temperature from ``y``; ``domain``: prior)."""
        from .backends.shared import runtime_backend
        from .models import resolve_model

        texts = as_texts(X)
        config = self.resolved_config()
        backend = runtime_backend(resolve_model(config.model), config.runtime, shared=True)
        classifier = Classifier(config, backend)
        names = config.label_names
        if y is not None:
            labels = [str(v) for v in np.asarray(y, dtype=object).ravel()]
            if len(labels) != len(texts):
                raise ValueError(f"X has {len(texts)} texts but y has {len(labels)} labels")
            unknown = sorted(set(labels) - set(names))
            if unknown:
                raise ValueError(f"y holds {unknown[:3]}, which are not labels of the config ({', '.join(names)})")
        if config.scoring.calibration == "fitted":
            if y is None:
                raise ValueError("calibration='fitted' learns from labels: call fit(X, y)")
            classifier.fit(texts, labels)
        elif config.scoring.calibration == "domain":
            classifier.fit_domain(texts)
        self.classifier_ = classifier
        self.__dict__.pop("snapshot_", None)  # what an unpickled estimator was restored from, now refitted
        # scikit-learn's convention (CalibratedClassifierCV relies on it): classes_ sorted, as np.unique gives them
        self.classes_ = np.array(sorted(names), dtype=object)
        self.columns_ = np.array([names.index(name) for name in self.classes_])
        return self

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        """The parameters and what was fitted, without the model (a llama.cpp handle does not pickle)."""
        from . import __version__
        from .ray import prepare

        state = dict(super().__getstate__())
        classifier = state.pop("classifier_", None)
        if classifier is not None:  # fitted in this process: what the model scored and what was fitted
            state["snapshot_"] = prepare(classifier)  # its model is the file's path
        state["_lpclassify_version"] = __version__
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Load nothing: the first prediction reopens the model (see :meth:`fitted_classifier`)."""
        from . import __version__

        state = dict(state)
        saved = state.pop("_lpclassify_version", __version__)
        if saved != __version__:
            warnings.warn(LpclassifyVersionWarning(estimator_name=type(self).__name__, original_version=saved,
                                                   current_version=__version__), stacklevel=2)
        super().__setstate__(state)

    def fitted_classifier(self) -> Classifier:
        """The fitted classifier; for an unpickled estimator, rebuilt on first use from the shared model."""
        if "classifier_" not in self.__dict__ and "snapshot_" in self.__dict__:
            self.classifier_ = restore(self.snapshot_, self.snapshot_.config.model)
        check_is_fitted(self, "classifier_")
        return self.classifier_

    # ------------------------------------------------------------------ predicting

    def predict(self, X: Any) -> np.ndarray:
        """Label names, ``abstain_label`` where the classifier abstained (an object array)."""
        predictions = self.fitted_classifier().classify_many(as_texts(X))
        return np.array([self.abstain_label if p.label is None else p.label for p in predictions], dtype=object)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities ``(n_texts, n_labels)`` in the order of ``classes_`` (sorted label names)."""
        return self.fitted_classifier().predict_proba(as_texts(X))[:, self.columns_]

    def predict_log_proba(self, X: Any) -> np.ndarray:
        return np.log(np.clip(self.predict_proba(X), 1e-300, None))

    # ------------------------------------------------------------------ scikit-learn's tags

    def __sklearn_tags__(self) -> Any:  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.non_deterministic = False
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"X_types": ["string"], "requires_y": False}


def restore(snapshot: Snapshot, spec: str) -> Classifier:
    """A pickled estimator's classifier: its model file (the path it had, else ``spec`` resolved here),
    which must have the size it had, from the shared backends, with the snapshot's scores and state."""
    from .backends.shared import shared_backend
    from .models import resolve_model
    from .ray import Predictor

    path = Path(snapshot.model)
    if not path.is_file():
        path = resolve_model(spec)
    size = path.stat().st_size
    if snapshot.model_size is not None and size != snapshot.model_size:
        raise ModelError(f"{path} has {size} bytes, but the estimator was fitted with a model file of "
                         f"{snapshot.model_size} bytes: load it where the same model is, or fit it again")
    rt = snapshot.config.runtime
    backend = shared_backend(path, n_ctx=rt.n_ctx, batch_size=rt.batch_size, threads=rt.threads,
                             n_gpu_layers=rt.n_gpu_layers)
    return Predictor(snapshot, backend=backend).classifier


def overridden(section: Any, checked: Any, wanted: Mapping[str, Any]) -> Any:
    """``section`` with the fields ``wanted`` sets (not None) taken from ``checked``."""
    return replace(section, **{key: getattr(checked, key) for key, value in wanted.items() if value is not None})


def as_texts(X: Any) -> list[str]:
    """Texts from what scikit-learn passes as ``X``: a sequence, a 1-D array, a Series, a one-column 2-D array."""
    if isinstance(X, str):
        raise ValueError("expected a sequence of texts, got one string; wrap it in a list")
    array = np.asarray(X, dtype=object)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"expected a sequence of texts (1-D), got an array of shape {array.shape}")
    texts: Sequence[Any] = array.tolist()
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(f"expected texts (strings), got {type(bad).__name__} {bad!r}")
    return list(texts)
