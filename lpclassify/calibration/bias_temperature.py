"""Per-label bias and a temperature learned from a few labelled examples: the maths of fitted calibration.

``p = softmax(scale * log p_model + bias)`` minimizes the log-loss on the examples (a convex
problem: damped Newton, deterministic, no scipy). It contains contextual calibration
(``scale=1``, ``bias = -log prior``) and temperature scaling (``bias=0``) as special cases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..normalize import log_probabilities, softmax

CV_FOLDS = 5
CV_SEED = 0


@dataclass(frozen=True)
class FittedCalibration:
    """Per-label bias and one temperature: ``p = softmax(scale * log p_model + bias)``, ``scale = 1/T``.

    It contains contextual calibration as a special case (``scale=1``, ``bias = -log prior``)
    and temperature scaling (``bias=0``), so with enough examples it does at least as well on
    its training data as either.
    """

    bias: tuple[float, ...]
    scale: float
    n_examples: int = 0
    log_loss_before: float = float("nan")
    log_loss_after: float = float("nan")

    @property
    def temperature(self) -> float:
        return 1.0 / self.scale

    def apply(self, log_probs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from uncalibrated label log-probabilities ``(..., n_labels)``."""
        z = np.nan_to_num(np.asarray(log_probs, dtype=np.float64), neginf=-1e4)
        return softmax(self.scale * z + np.asarray(self.bias))

    def as_dict(self) -> dict[str, object]:
        return {"bias": list(self.bias), "scale": self.scale, "temperature": self.temperature,
                "n_examples": self.n_examples, "log_loss_before": self.log_loss_before,
                "log_loss_after": self.log_loss_after}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> FittedCalibration:
        bias = data["bias"]
        scale = data.get("scale")
        if scale is None:
            scale = 1.0 / float(data["temperature"])  # type: ignore[arg-type]
        if not isinstance(bias, list) or not all(isinstance(b, (int, float)) for b in bias):
            raise ValueError("'bias' must be a list of numbers")
        return cls(tuple(float(b) for b in bias), float(scale), int(data.get("n_examples", 0)),  # type: ignore[arg-type]
                   float(data.get("log_loss_before", float("nan"))),  # type: ignore[arg-type]
                   float(data.get("log_loss_after", float("nan"))))  # type: ignore[arg-type]


def fit_bias_temperature(log_probs: np.ndarray, labels: Sequence[int] | np.ndarray, *, ridge: float = 1.0,
                         max_steps: int = 100, tol: float = 1e-10, min_scale: float = 1e-3) -> FittedCalibration:
    """Fit :class:`FittedCalibration` to labelled examples by minimizing the log-loss (damped Newton).

    ``log_probs`` are the model's uncalibrated label log-probabilities ``(n, n_labels)``;
    ``labels`` the true label indices. The parameters are ``scale`` (1/temperature) and one
    bias per label: 1 + n_labels numbers. The log-loss is convex in them (the logits are
    linear in the parameters), so Newton's method with a backtracking line search finds the
    optimum in a few steps, deterministically. ``ridge`` adds ``ridge/2 * (|bias|^2 +
    (scale-1)^2)`` to the summed log-loss: it pins the bias's free additive constant, keeps a
    label that no example has from running off to -inf, and matters little beyond a few dozen
    examples. ``scale`` is kept at least ``min_scale``: a negative temperature would invert
    the model's ranking, which a handful of examples should not be allowed to do.

    >>> z = np.log(np.array([[0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.9, 0.1]]))
    >>> fit = fit_bias_temperature(z, [0, 1, 1, 0])
    >>> fit.log_loss_after < fit.log_loss_before
    True
    """
    z = np.nan_to_num(np.asarray(log_probs, dtype=np.float64), neginf=-1e4)
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or len(z) != len(y) or len(z) == 0:
        raise ValueError("expected log_probs (n, n_labels) and n labels, n >= 1")
    n, k = z.shape
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"labels must be indices in 0..{k - 1}")
    onehot = np.eye(k)[y]
    prior_theta = np.concatenate([[1.0], np.zeros(k)])

    def objective(theta: np.ndarray) -> float:
        logits = theta[0] * z + theta[1:]
        nll = -(log_probabilities(logits) * onehot).sum()
        return float(nll + 0.5 * ridge * np.sum((theta - prior_theta) ** 2))

    theta = prior_theta.copy()
    current = objective(theta)
    for _ in range(max_steps):
        p = softmax(theta[0] * z + theta[1:])
        residual = p - onehot  # (n, k)
        grad = np.concatenate([[np.sum(residual * z)], residual.sum(axis=0)]) + ridge * (theta - prior_theta)
        # Hessian of the multinomial log-loss through the features [z_i | I]: X^T (diag p - p p^T) X.
        pz = (p * z).sum(axis=1)  # (n,)
        h_aa = np.sum(p * z * z) - np.sum(pz**2)
        h_ab = (p * z).sum(axis=0) - (p * pz[:, None]).sum(axis=0)
        h_bb = np.diag(p.sum(axis=0)) - p.T @ p
        hessian = np.empty((k + 1, k + 1))
        hessian[0, 0], hessian[0, 1:], hessian[1:, 0], hessian[1:, 1:] = h_aa, h_ab, h_ab, h_bb
        hessian += ridge * np.eye(k + 1) + 1e-12 * np.eye(k + 1)
        step = np.linalg.solve(hessian, grad)
        size = 1.0
        while size > 1e-8:
            candidate = theta - size * step
            candidate[0] = max(candidate[0], min_scale)
            value = objective(candidate)
            if value <= current:
                break
            size *= 0.5
        else:
            break
        improvement = current - value
        theta, current = candidate, value
        if improvement <= tol * max(1.0, abs(current)):
            break
    before = float(-(log_probabilities(z) * onehot).sum() / n)
    after = float(-(log_probabilities(theta[0] * z + theta[1:]) * onehot).sum() / n)
    return FittedCalibration(tuple(float(b) for b in theta[1:]), float(theta[0]), n, before, after)


def cross_validated_fit(log_probs: np.ndarray, y: np.ndarray, *, folds: int = CV_FOLDS,
                        seed: int = CV_SEED) -> np.ndarray:
    """Out-of-fold probabilities of fitted calibration: each row from a fit on the other folds."""
    n = len(y)
    order = np.random.default_rng(seed).permutation(n)
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = np.arange(n) % max(2, min(folds, n))
    out = np.empty_like(log_probs)
    for fold in np.unique(fold_of):
        held = fold_of == fold
        fit = fit_bias_temperature(log_probs[~held], y[~held])
        out[held] = fit.apply(log_probs[held])
    return out
