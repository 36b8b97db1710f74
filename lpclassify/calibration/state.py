"""What a classifier learns for calibration, and its calibration file.

Fitted parameters (:meth:`Classifier.fit`), in-domain inputs (:meth:`Classifier.fit_domain`) and a
stored domain prior (from a calibration file) are the per-classifier state the methods read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .bias_temperature import FittedCalibration
from .store import calibration_direction, read_calibration_file

log = logging.getLogger("lpclassify")


@dataclass
class CalibrationState:
    """Fitted parameters and domain inputs/prior of one classifier (empty until fitted or loaded)."""

    fitted: tuple[FittedCalibration, str, str] | None = None  # (fit, normalize, aggregate)
    domain_inputs: tuple[str, ...] | None = None
    domain_stored_prior: tuple[np.ndarray, tuple[Any, Any, Any]] | None = None  # (prior, (normalize, aggregate, model))

    def load(self, path: str | Path, labels: tuple[str, ...], model_name: str | None, *, direction: str,
             source: str) -> None:
        """Take the fitted parameters and/or domain prior of a calibration file (ConfigError if unusable).

        ``direction`` is the config's ``scoring.direction``: parameters fitted on P(label | input)
        mean nothing for P(input | label) and the other way round, so a file of the other one is refused.
        """
        key = "scoring.calibration_file"
        try:
            data = read_calibration_file(path)
        except OSError as exc:
            raise ConfigError(f"cannot read calibration file {path}: {exc.strerror or exc}", source=source,
                              key=key) from None
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}", source=source, key=key) from None
        if list(data["labels"]) != list(labels):  # type: ignore[call-overload]
            raise ConfigError(f"{path} was made for labels {data['labels']}, not {list(labels)}; "
                              "rerun `lpclassify calibrate`", source=source, key=key)
        made = calibration_direction(data)
        if made != direction:
            config = source if source != "<mapping>" else "CONFIG"
            refit = f"lpclassify calibrate -c {config} -i LABELLED.jsonl -o {path}"
            raise ConfigError(f"{path} was fitted with scoring.direction: {made}, but this config scores with "
                              f"scoring.direction: {direction}; its parameters do not apply to {direction} scores: "
                              f"refit it with `{refit}`", source=source, key=key)
        if data.get("model") not in (None, model_name):
            log.warning("calibration file %s was made with model %s, not %s", path, data.get("model"), model_name)
        try:
            self._take(data, len(labels))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: malformed calibration file ({exc})", source=source, key=key) from None

    def _take(self, data: dict[str, Any], n_labels: int) -> None:
        fitted = data.get("fitted")
        if isinstance(fitted, dict):
            fit = FittedCalibration.from_dict(fitted)
            if len(fit.bias) != n_labels:
                raise ValueError("'fitted.bias' needs one number per label")
            self.fitted = (fit, str(fitted.get("normalize", data.get("normalize", "sum"))),
                           str(fitted.get("aggregate", data.get("aggregate", "logsumexp"))))
        domain = data.get("domain")
        if isinstance(domain, dict):
            inputs = domain.get("inputs")
            self.domain_inputs = tuple(str(t) for t in inputs) if isinstance(inputs, list) and inputs else None
            prior = domain.get("prior")
            if isinstance(prior, list) and len(prior) == n_labels:
                self.domain_stored_prior = (np.array(prior, dtype=np.float64),
                                            (domain.get("normalize"), domain.get("aggregate"), data.get("model")))
