"""Calibration: from uncalibrated label scores to probabilities that mean what they say.

* :mod:`.base` -- the interface a method implements (:class:`Calibration`) and its :class:`Context`;
* :mod:`.registry` -- methods by name (adding one: a module plus one line there);
* :mod:`.priors` (contextual, domain, batch), :mod:`.pmi`, :mod:`.fitted` -- the method families
  (:mod:`.bias_temperature`: the fit behind ``fitted``);
* :mod:`.state` -- what a classifier fitted or loaded; :mod:`.references` -- the reference-score
  cache; :mod:`.store` -- the JSON files both persist.
"""

from .base import Calibration, Context
from .bias_temperature import CV_FOLDS, FittedCalibration, cross_validated_fit, fit_bias_temperature
from .pmi import pmi_scores
from .priors import (
    BATCH_CHUNK,
    MIN_BATCH,
    Domain,
    PriorCalibration,
    apply_prior,
    batch_calibrate,
    batch_chunk_size,
    classify_chunk_size,
    domain_inputs,
    mean_prior,
)
from .registry import get, method_names, register, unregister
from .state import CalibrationState

__all__ = [
    "BATCH_CHUNK", "CV_FOLDS", "MIN_BATCH", "Calibration", "CalibrationState", "Context", "Domain",
    "FittedCalibration", "PriorCalibration",
    "apply_prior", "batch_calibrate", "batch_chunk_size", "classify_chunk_size", "cross_validated_fit", "domain_inputs",
    "fit_bias_temperature", "get", "mean_prior", "method_names", "pmi_scores", "register",
    "unregister",
]
