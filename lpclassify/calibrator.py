"""From raw scores to label probabilities, calibrated: the classifier's middle stage.

``probabilities(raw)`` runs the pipeline every method shares -- the method's completion-score
adjustment, normalization, aggregation per label, then the method's own step (see
:mod:`lpclassify.calibration`) -- and :class:`Calibrator` keeps what the methods need across
calls: fitted parameters, domain inputs, the calibration file, reference scores.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from . import calibration
from .backends.base import ModelIdentity
from .calibration.priors import Domain
from .calibration.references import ReferenceCache
from .calibration.store import write_calibration_file
from .config.direction import check_channel_settings
from .errors import ConfigError, InputError
from .inputs import Input, input_words
from .normalize import label_bias, label_scores, normalize, safe_log, softmax, yes_bias, yes_no_scores
from .scorer import Scorer
from .scores import RawScores


class Calibrator:
    """Normalization, aggregation and calibration for one scorer's config and model."""

    def __init__(self, scorer: Scorer, model: ModelIdentity) -> None:
        self.config = scorer.config
        self.scorer = scorer
        self.model_name = model.name
        setting: dict[str, object] = {"pairs": scorer.display_pairs(), "mode": self.config.decision.mode,
                                      "n_ctx": scorer.backend.n_ctx}
        if specials := scorer.template_specials():  # special tokens in the template change the tokens
            setting["special_tokens"] = specials
        # A reference text (content-free, neutral, domain) fills every field of the prompt.
        self.references = ReferenceCache(
            lambda texts: scorer.raw_scores([scorer.prompter.fill_all(t) for t in texts]), scorer.slots,
            model=model.cache_key(), setting=setting)
        self._state: calibration.CalibrationState | None = None
        self._state_lock = threading.Lock()

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> calibration.CalibrationState:
        """Fitted parameters and domain inputs; the config's calibration file is read on first use."""
        with self._state_lock:  # read once even when threads ask at the same time
            if self._state is None:
                state = calibration.CalibrationState()
                file = self.config.scoring.calibration_file
                if file:  # a failure is reported again on the next call
                    base = Path(self.config.source).parent if self.config.source != "<mapping>" else Path.cwd()
                    state.load(base / file, self.config.label_names, self.model_name, source=self.config.source)
                self._state = state
            return self._state

    def use(self, method: str) -> None:
        """Make ``method`` the config's calibration (after fitting it)."""
        if self.config.scoring.calibration != method:
            self.config = replace(self.config, scoring=replace(self.config.scoring, calibration=method))

    # ------------------------------------------------------------------ probabilities

    def context(self, normalize: str, batch_prior: np.ndarray | None = None) -> calibration.Context:
        return calibration.Context(
            config=self.config, load_state=lambda: self.state, normalize=normalize, model_name=self.model_name,
            uncalibrated=lambda texts: self.probabilities(self.references.get(texts), calibrate=False,
                                                          normalize=normalize),
            raw_references=self.references.get, batch_prior=batch_prior)

    def prepare(self, method: str | None = None) -> None:
        """Score the reference texts ``method`` needs now (once; cached), not in the middle of the maths."""
        method_ = calibration.get(method or self.config.scoring.calibration)
        texts = method_.reference_texts(self.config, self.state)
        if texts:
            self.references.get(texts)

    def probabilities(self, raw: RawScores, *, calibrate: bool = True, method: str | None = None,
                      normalize: str | None = None, batch_prior: np.ndarray | None = None) -> np.ndarray:
        """Label probabilities (n_texts, n_labels): adjust, normalize, combine per label, calibrate.

        Multi-label yes/no probabilities are returned uncalibrated. Then, unless ``calibrate`` is
        False, the config's per-label ``bias`` and ``scoring.temperature`` (see :func:`label_bias`).
        """
        scoring = self.config.scoring
        method_ = calibration.get((method or scoring.calibration) if calibrate else "none")
        if scoring.channel:
            check_channel_settings(method_.name, normalize or scoring.normalize, self.config.source)
        if method_.name != "none":
            self.state  # noqa: B018 - a calibration file that cannot be used is reported on any calibration
        norm = normalize or scoring.normalize
        context = self.context(norm, batch_prior)
        logprobs = method_.completion_scores(raw.logprobs, context)
        normalized = normalize_scores(logprobs, raw, norm)
        n_labels = len(self.config.labels)
        bias = self.config.biases if calibrate else (0.0,) * n_labels
        temperature = scoring.temperature if calibrate else 1.0
        if self.config.decision.mode == "multi":
            yes, no = yes_no_scores(normalized, self.scorer.slots, n_labels, scoring.aggregate)
            return yes_bias(softmax(np.stack([yes, no], axis=-1))[..., 0], bias, temperature)
        probs = method_.probabilities(label_scores(normalized, self.scorer.slots, n_labels, scoring.label_aggregate),
                                      context)
        return label_bias(probs, bias, temperature)

    def content_free_prior(self, *, normalize: str | None = None) -> np.ndarray:
        self.state  # noqa: B018 - a calibration file that cannot be used is reported on any calibration
        context = self.context(normalize or self.config.scoring.normalize)
        return calibration.mean_prior(context.uncalibrated(self.config.scoring.content_free))

    def domain_prior(self, *, normalize: str | None = None) -> np.ndarray:
        return Domain().prior(self.context(normalize or self.config.scoring.normalize))

    # ------------------------------------------------------------------ fitting

    def fit_domain(self, texts: Sequence[Input], *, n_samples: int = 20, seed: int = 0) -> None:
        try:
            inputs = calibration.domain_inputs([input_words(t) for t in texts], n_samples=n_samples, seed=seed)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        state = self.state
        state.domain_inputs = tuple(inputs)
        state.domain_stored_prior = None
        self.use("domain")

    def fit_scores(self, raw: RawScores, labels: Sequence[Any]) -> None:
        if self.config.decision.mode != "single":
            raise ConfigError("fitted calibration is for single-label configs (decision.mode: single)",
                              source=self.config.source, key="decision.mode")
        if len(labels) != len(raw.logprobs) or not len(labels):
            raise InputError(f"fit needs one label per text (got {len(raw.logprobs)} texts, {len(labels)} labels)")
        y = label_indices(labels, self.config.label_names)
        fit = calibration.fit_bias_temperature(safe_log(self.probabilities(raw, calibrate=False)), y)
        self.state.fitted = (fit, self.config.scoring.normalize, self.config.scoring.aggregate)
        self.use("fitted")

    # ------------------------------------------------------------------ files

    def document(self) -> dict[str, Any]:
        """What a calibration file holds: the fitted parameters and/or the domain prior."""
        state = self.state
        scoring = self.config.scoring
        document: dict[str, Any] = {"labels": list(self.config.label_names), "model": self.model_name,
                                    "normalize": scoring.normalize, "aggregate": scoring.aggregate}
        if state.fitted is not None:
            fit, norm, agg = state.fitted
            document["fitted"] = {**fit.as_dict(), "normalize": norm, "aggregate": agg}
        if state.domain_inputs is not None:
            document["domain"] = {"prior": self.domain_prior().tolist(), "inputs": list(state.domain_inputs),
                                  "normalize": scoring.normalize, "aggregate": scoring.aggregate}
        return document

    def save(self, path: str | Path) -> None:
        document = self.document()
        if "fitted" not in document and "domain" not in document:
            raise InputError("nothing to save: call fit() or fit_domain() first")
        write_calibration_file(path, document)

    def load(self, path: str | Path) -> None:
        self.state.load(path, self.config.label_names, self.model_name, source=self.config.source)


def normalize_scores(logprobs: np.ndarray, raw: RawScores, method: str) -> np.ndarray:
    # A module-level name for normalize(): inside probabilities() the ``normalize`` argument shadows it.
    return normalize(logprobs, raw.n_tokens, raw.n_chars, method)


def label_indices(labels: Sequence[Any], names: Sequence[str]) -> np.ndarray:
    """True labels as indices (names or indices in the config's order); InputError if one is neither."""
    try:
        return calibration.label_indices(labels, names)
    except ValueError as exc:
        raise InputError(str(exc)) from None
