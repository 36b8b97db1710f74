"""From raw scores to label probabilities, calibrated: the classifier's middle stage.

The maths is :func:`lpclassify.pipeline.run`'s (pure, shared with ``explain``, evaluation, Ray
and ``tune``); :class:`Calibrator` is the state around it: the config's setting, fitted
parameters, domain inputs, the calibration file and the reference-score cache.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from . import calibration, pipeline
from .backends.base import ModelIdentity
from .calibration.priors import Domain
from .calibration.references import ReferenceCache
from .calibration.store import write_calibration_file
from .config.direction import check_channel_settings
from .errors import ConfigError, InputError
from .inputs import Input, input_words
from .labels import label_indices
from .normalize import safe_log
from .scorer import Scorer
from .scores import RawScores


class Calibrator:
    """Normalization, aggregation and calibration for one scorer's config and model."""

    def __init__(self, scorer: Scorer, model: ModelIdentity) -> None:
        self.config = scorer.config
        self.scorer = scorer
        self.model_name = model.name
        setting: dict[str, object] = {"pairs": scorer.display_pairs(), "mode": self.config.decision.score_mode,
                                      "n_ctx": scorer.backend.n_ctx}
        if specials := scorer.template_specials():  # special tokens in the template change the tokens
            setting["special_tokens"] = specials
        # A reference text (content-free, neutral, domain) fills every field of the prompt.
        self.references = ReferenceCache(
            lambda texts: scorer.raw_scores([scorer.prompter.fill_all(t) for t in texts]), scorer.slots,
            model=model.cache_key(), setting=setting)
        self.columns = pipeline.Columns(tuple(slot.label for slot in scorer.slots), len(self.config.labels),
                                        None if self.config.decision.score_mode == "single"
                                        else tuple(slot.yes for slot in scorer.slots))
        # A reference text's scores never change for this scorer and model, so neither do its
        # uncalibrated probabilities under one setting: worked out once (pipeline.References.memo).
        self._reference_memo: dict = {}
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
                    state.load(base / file, self.config.label_names, self.model_name,
                               direction=self.config.scoring.direction, source=self.config.source)
                self._state = state
            return self._state

    def use(self, method: str) -> None:
        """Make ``method`` the config's calibration (after fitting it)."""
        if self.config.scoring.calibration != method:
            self.config = replace(self.config, scoring=replace(self.config.scoring, calibration=method))

    # ------------------------------------------------------------------ probabilities

    def setting(self, *, calibrate: bool = True, method: str | None = None,
                normalize: str | None = None) -> pipeline.Setting:
        """The config's :class:`~lpclassify.pipeline.Setting`, with this call's overrides."""
        scoring = self.config.scoring
        if scoring.channel:  # P(input | label): some settings have no meaning (see config.direction)
            check_channel_settings(method or scoring.calibration if calibrate else "none",
                                   normalize or scoring.normalize, self.config.source)
        if not calibrate:
            return pipeline.Setting(normalize or scoring.normalize, scoring.label_aggregate)
        return pipeline.Setting(normalize or scoring.normalize, scoring.label_aggregate, method or scoring.calibration,
                                self.config.biases, scoring.temperature)

    def references_for(self) -> pipeline.References:
        """What the methods may read: the cached reference scores, the calibration state, the config's texts."""
        return pipeline.References(scores=self.references.get, content_free=tuple(self.config.scoring.content_free),
                                   state=lambda: self.state, source=self.config.source, model_name=self.model_name,
                                   memo=self._reference_memo)

    def prepare(self, method: str | None = None) -> None:
        """Score the reference texts ``method`` needs now (once; cached), not in the middle of the maths."""
        method_ = calibration.get(method or self.config.scoring.calibration)
        texts = method_.reference_texts(self.config.scoring.content_free, self.config.decision.score_mode,
                                        self.state)
        if texts:
            self.references.get(texts)

    def trace(self, raw: RawScores, *, calibrate: bool = True, method: str | None = None,
              normalize: str | None = None, batch_prior: np.ndarray | None = None) -> pipeline.Trace:
        """Every intermediate array from ``raw`` to label probabilities (see :func:`lpclassify.pipeline.run`)."""
        setting = self.setting(calibrate=calibrate, method=method, normalize=normalize)
        if setting.method != "none":
            self.state  # noqa: B018 - a calibration file that cannot be used is reported on any calibration
        return pipeline.run(raw, self.columns, setting, self.references_for(), batch_prior=batch_prior)

    def probabilities(self, raw: RawScores, *, calibrate: bool = True, method: str | None = None,
                      normalize: str | None = None, batch_prior: np.ndarray | None = None) -> np.ndarray:
        """Label probabilities (n_texts, n_labels): adjust, normalize, combine per label, calibrate.

        Multi-label yes/no probabilities are returned uncalibrated. Then, unless ``calibrate`` is
        False, the config's per-label ``bias`` and ``scoring.temperature`` (see :func:`label_bias`).
        """
        return self.trace(raw, calibrate=calibrate, method=method, normalize=normalize,
                          batch_prior=batch_prior).probabilities

    def uncalibrated(self, texts: Sequence[str], normalize: str | None = None) -> np.ndarray:
        """Uncalibrated label probabilities of reference texts (scored once, cached)."""
        return self.probabilities(self.references.get(texts), calibrate=False, normalize=normalize)

    def content_free_prior(self, *, normalize: str | None = None) -> np.ndarray:
        self.state  # noqa: B018 - a calibration file that cannot be used is reported on any calibration
        return calibration.mean_prior(self.uncalibrated(self.config.scoring.content_free, normalize))

    def domain_prior(self, *, normalize: str | None = None) -> np.ndarray:
        setting = self.setting(normalize=normalize)
        context = pipeline.context(self.columns, setting, self.references_for())
        return Domain().prior(None, context)

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
        # label_aggregate: what the fit was made on (channel turns logsumexp into a log-mean)
        self.state.fitted = (fit, self.config.scoring.normalize, self.config.scoring.label_aggregate)
        self.use("fitted")

    # ------------------------------------------------------------------ files

    def document(self) -> dict[str, Any]:
        """What a calibration file holds: the fitted parameters and/or the domain prior."""
        state = self.state
        scoring = self.config.scoring
        document: dict[str, Any] = {"labels": list(self.config.label_names), "model": self.model_name,
                                    "direction": scoring.direction, "normalize": scoring.normalize,
                                    "aggregate": scoring.aggregate}
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
        self.state.load(path, self.config.label_names, self.model_name, direction=self.config.scoring.direction,
                        source=self.config.source)
