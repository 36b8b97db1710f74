"""Fitted calibration: the method that applies a per-label bias and temperature learned from labelled examples.

The fit itself is :mod:`.bias_temperature`'s; the parameters come from ``Classifier.fit`` or a
calibration file (:class:`~.state.CalibrationState`).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..normalize import log_probabilities
from .base import Calibration, Context
from .bias_temperature import FittedCalibration


class Fitted(Calibration):
    name = "fitted"
    needs_labels = True
    summary = "per-label bias and a temperature fitted on labelled examples (Classifier.fit, lpclassify calibrate)"

    def fit_in_use(self, context: Context) -> FittedCalibration:
        fitted = context.state.fitted
        source = context.source
        if fitted is None:
            raise ConfigError("fitted calibration needs parameters: call Classifier.fit(texts, labels) or set "
                              "scoring.calibration_file to a file written by `lpclassify calibrate`",
                              source=source, key="scoring.calibration")
        fit, norm, agg = fitted
        if (norm, agg) != (context.normalize, context.aggregate):
            raise ConfigError(f"the fitted calibration was fitted with normalize={norm}, aggregate={agg}; this "
                              f"classifier uses normalize={context.normalize}, aggregate={context.aggregate}: "
                              "refit it", source=source, key="scoring.calibration")
        return fit

    def probabilities(self, label_scores: np.ndarray, context: Context) -> np.ndarray:
        return self.fit_in_use(context).apply(log_probabilities(label_scores))
