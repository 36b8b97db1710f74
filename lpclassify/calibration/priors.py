"""Calibration by dividing out a prior: contextual, domain-context and batch calibration.

All three estimate the label distribution the model prefers regardless of the input and
divide it out (Zhao et al. 2021, diagonal W): they differ in where the prior comes from.

>>> import numpy as np
>>> probs = np.array([0.25, 0.75])
>>> apply_prior(probs, np.array([0.5, 0.5])).round(3).tolist()
[0.25, 0.75]
>>> apply_prior(probs, np.array([0.25, 0.75])).round(3).tolist()
[0.5, 0.5]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..normalize import softmax
from .base import Calibration, Context

if TYPE_CHECKING:
    from .state import CalibrationState

log = logging.getLogger("lpclassify")

MIN_BATCH = 8
# The batch size batch calibration is evaluated with (and should be used with): large enough for
# a stable mean, small enough for streams.
BATCH_CHUNK = 32


def apply_prior(probabilities: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Divide label probabilities by a prior and renormalize (Zhao et al. 2021, diagonal W).

    With the prior the model assigns to content-free inputs, a label the model favours
    regardless of the input loses exactly that advantage.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    prior = np.clip(np.asarray(prior, dtype=np.float64), 1e-300, None)
    weighted = probabilities / prior
    return weighted / weighted.sum(axis=-1, keepdims=True)


def mean_prior(probabilities: np.ndarray) -> np.ndarray:
    """The mean label distribution over a set of inputs (rows): the prior a calibrator divides out.

    Contextual calibration takes it over content-free inputs ("N/A", "", "[MASK]"), domain-context
    calibration over random in-domain word strings, batch calibration over the batch being
    classified. ``apply_prior`` with this prior maps the mean itself to exactly uniform:

    >>> p = np.array([[0.9, 0.1], [0.7, 0.3]])
    >>> apply_prior(mean_prior(p), mean_prior(p)).tolist()
    [0.5, 0.5]
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or len(probabilities) == 0:
        raise ValueError("expected a non-empty (n_inputs, n_labels) array")
    return probabilities.mean(axis=0)


def batch_calibrate(probabilities: np.ndarray, *, min_batch: int = MIN_BATCH) -> tuple[np.ndarray, bool]:
    """Batch calibration (Zhou et al. 2023): divide by the batch's mean probabilities, renormalize.

    Returns ``(probabilities, applied)``. The batch mean estimates the model's label bias only
    when the batch is large enough and its true label mix is not extremely skewed: on a batch
    of one text it would make every label equally likely, and on a batch of only positive
    reviews it would push half of them to negative. So under ``min_batch`` rows (default 8) it
    returns the input unchanged and ``applied=False``.

    >>> p = np.array([[0.9, 0.1], [0.6, 0.4]] * 4)
    >>> q, applied = batch_calibrate(p)
    >>> applied, q[0].round(3).tolist(), q[1].round(3).tolist()
    (True, [0.75, 0.25], [0.333, 0.667])
    >>> batch_calibrate(p[:2])[1]
    False
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(probabilities) < max(min_batch, 1):
        return probabilities, False
    return apply_prior(probabilities, mean_prior(probabilities)), True


def domain_inputs(texts: Sequence[str], *, n_samples: int = 20, seed: int = 0,
                  length: int | None = None) -> list[str]:
    """Content-free inputs made of random in-domain words (Fei et al. 2023, domain-context calibration).

    The vocabulary is the set of whitespace-separated words of ``texts`` (unlabelled texts from
    the task's domain); each of the ``n_samples`` inputs draws ``length`` words from it
    uniformly at random (default: the texts' mean word count, rounded). The words carry the
    domain's register without a coherent meaning, so the model's answer on them measures the
    bias the domain itself induces. Deterministic for a given ``seed``.

    >>> domain_inputs(["a b c", "d e f"], n_samples=2, seed=0)
    ['f d d', 'b b a']
    """
    words = sorted({word for text in texts for word in text.split()})
    if not words:
        raise ValueError("domain calibration needs in-domain texts with at least one word")
    if length is None:
        length = round(float(np.mean([len(text.split()) for text in texts])))
    length = max(int(length), 1)
    rng = np.random.default_rng(seed)
    return [" ".join(words[i] for i in rng.integers(0, len(words), size=length)) for _ in range(n_samples)]


def batch_chunk_size(batch_size: int) -> int:
    """Texts per batch-calibration batch: ``classify_many``'s chunk (4 x runtime.batch_size), at least 32.

    The one rule for the chunk batch calibration averages over: the classifier, Ray, evaluation
    and ``tune`` all cut texts with it.
    """
    return max(classify_chunk_size(batch_size), BATCH_CHUNK)


def classify_chunk_size(batch_size: int) -> int:
    """Texts per ``classify_many`` model call for any other method: 4 x runtime.batch_size."""
    return max(1, batch_size) * 4


class PriorCalibration(Calibration):
    """A method that divides the label probabilities by a prior (:func:`apply_prior`); subclasses say whence."""

    def prior(self, probabilities: np.ndarray, context: Context) -> np.ndarray | None:
        """The prior to divide ``probabilities`` (uncalibrated, ``(n, n_labels)``) by; None: leave them as they are."""
        raise NotImplementedError

    def calibrate(self, label_scores: np.ndarray, context: Context) -> tuple[np.ndarray, np.ndarray | None]:
        probs = softmax(label_scores)
        prior = self.prior(probs, context)
        return (probs if prior is None else apply_prior(probs, prior)), prior

    def probabilities(self, label_scores: np.ndarray, context: Context) -> np.ndarray:
        return self.calibrate(label_scores, context)[0]


class Contextual(PriorCalibration):
    """Zhao et al. (2021): the prior is the mean over content-free inputs ("N/A", "", "[MASK]")."""

    name = "contextual"
    summary = "divide by the label probabilities of content-free inputs"

    def reference_texts(self, content_free: Sequence[str], mode: str, state: CalibrationState) -> tuple[str, ...]:
        return tuple(content_free)

    def prior(self, probabilities: np.ndarray, context: Context) -> np.ndarray:
        return mean_prior(context.uncalibrated(context.content_free))


class Domain(PriorCalibration):
    """Fei et al. (2023): the prior is the mean over random strings of in-domain words."""

    name = "domain"
    summary = "divide by the label probabilities of random in-domain word strings"

    def reference_texts(self, content_free: Sequence[str], mode: str, state: CalibrationState) -> tuple[str, ...]:
        return state.domain_inputs if state.domain_stored_prior is None and state.domain_inputs else ()

    def prior(self, probabilities: np.ndarray | None, context: Context) -> np.ndarray:
        state = context.state
        stored = state.domain_stored_prior
        if stored is not None and stored[1] == (context.normalize, context.aggregate, context.model_name):
            return stored[0]
        if state.domain_inputs is None:
            raise ConfigError("domain calibration needs in-domain texts: call Classifier.fit_domain(texts) or set "
                              "scoring.calibration_file to a file written by `lpclassify calibrate`",
                              source=context.source, key="scoring.calibration")
        return mean_prior(context.uncalibrated(state.domain_inputs))


class Batch(PriorCalibration):
    """Zhou et al. (2023): the prior is the mean over the batch being classified."""

    name = "batch"
    summary = "divide by the mean label probabilities of the batch"
    uses_batch = True

    def prior(self, probabilities: np.ndarray, context: Context) -> np.ndarray | None:
        if context.batch_prior is not None:
            return context.batch_prior
        if len(probabilities) < MIN_BATCH:  # see batch_calibrate
            if len(probabilities):
                log.debug("batch calibration skipped: %d texts < %d", len(probabilities), MIN_BATCH)
            return None
        return mean_prior(probabilities)
