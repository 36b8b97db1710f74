"""Normalization and calibration: pure numpy functions on score arrays.

Shapes: ``completion`` arrays are per completion; ``label`` arrays are ``(..., n_labels)``.

>>> import numpy as np
>>> probs = softmax(np.array([0.0, np.log(3.0)]))
>>> probs.round(3).tolist()
[0.25, 0.75]
>>> apply_prior(probs, np.array([0.5, 0.5])).round(3).tolist()
[0.25, 0.75]
>>> apply_prior(probs, np.array([0.25, 0.75])).round(3).tolist()
[0.5, 0.5]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def normalize(logprobs: np.ndarray, n_tokens: np.ndarray, n_chars: np.ndarray, method: str) -> np.ndarray:
    """Per-completion score: ``sum`` (as is), ``mean`` (per token) or ``chars`` (per character).

    Longer completions collect more negative log-prob; dividing by length compares
    completions of different lengths on a per-unit basis.
    """
    logprobs = np.asarray(logprobs, dtype=np.float64)
    if method == "sum":
        return logprobs
    if method == "mean":
        return logprobs / np.maximum(np.asarray(n_tokens, dtype=np.float64), 1.0)
    if method == "chars":
        return logprobs / np.maximum(np.asarray(n_chars, dtype=np.float64), 1.0)
    raise ValueError(f"unknown normalization {method!r}")


def aggregate(scores: np.ndarray, owners: Sequence[int], n_labels: int, method: str) -> np.ndarray:
    """Combine each label's completion scores: ``logsumexp`` (any verbalizer) or ``max`` (best one).

    ``owners[i]`` is the label index of completion ``i``; scores may have leading batch axes.
    """
    scores = np.asarray(scores, dtype=np.float64)
    owners_array = np.asarray(owners)
    out = np.empty((*scores.shape[:-1], n_labels), dtype=np.float64)
    for label in range(n_labels):
        mine = scores[..., owners_array == label]
        if method == "logsumexp":
            out[..., label] = logsumexp(mine, axis=-1)
        elif method == "max":
            out[..., label] = mine.max(axis=-1)
        else:
            raise ValueError(f"unknown aggregation {method!r}")
    return out


def logsumexp(values: np.ndarray, axis: int = -1) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    peak = np.max(values, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    return np.squeeze(peak, axis=axis) + np.log(np.sum(np.exp(values - peak), axis=axis))


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Label probabilities from label log-scores, stable for very negative scores."""
    scores = np.asarray(scores, dtype=np.float64)
    shifted = scores - np.max(scores, axis=axis, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=axis, keepdims=True)


def apply_prior(probabilities: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Divide label probabilities by a prior and renormalize (Zhao et al. 2021, diagonal W).

    With the prior the model assigns to content-free inputs, a label the model favours
    regardless of the input loses exactly that advantage.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    prior = np.clip(np.asarray(prior, dtype=np.float64), 1e-300, None)
    weighted = probabilities / prior
    return weighted / weighted.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------- calibrators
#
# Every calibrator below maps uncalibrated label probabilities (or, for PMI, completion
# scores) to calibrated ones. They are pure: the reference scores they need (content-free
# priors, neutral-context scores, labelled examples) are passed in.


def mean_prior(probabilities: np.ndarray) -> np.ndarray:
    """The mean label distribution over a set of inputs (rows): the prior a calibrator divides out.

    Contextual calibration (Zhao et al. 2021) takes it over content-free inputs ("N/A", "",
    "[MASK]"), domain-context calibration (Fei et al. 2023) over random in-domain word strings,
    batch calibration (Zhou et al. 2023) over the batch being classified. ``apply_prior`` with
    this prior maps the mean itself to exactly uniform:

    >>> p = np.array([[0.9, 0.1], [0.7, 0.3]])
    >>> apply_prior(mean_prior(p), mean_prior(p)).tolist()
    [0.5, 0.5]
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or len(probabilities) == 0:
        raise ValueError("expected a non-empty (n_inputs, n_labels) array")
    return probabilities.mean(axis=0)


MIN_BATCH = 8
# The batch size batch calibration is evaluated with (and should be used with): large enough for
# a stable mean, small enough for streams.
BATCH_CHUNK = 32


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


def pmi_scores(logprobs: np.ndarray, neutral_logprobs: np.ndarray) -> np.ndarray:
    """Domain-conditional PMI (Holtzman et al. 2021): log p(c | prompt with text) - log p(c | neutral prompt).

    A completion that is likely whatever the text ("surface form competition": " good" is a
    common word) loses that advantage. ``neutral_logprobs`` holds each completion's summed
    log-prob under the template with the text left empty, shape ``(n_candidates,)``; it
    broadcasts over the texts.

    >>> pmi_scores(np.array([[-1.0, -3.0]]), np.array([-0.5, -4.0])).tolist()
    [[-0.5, 1.0]]
    """
    return np.asarray(logprobs, dtype=np.float64) - np.asarray(neutral_logprobs, dtype=np.float64)


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


def log_probabilities(label_scores: np.ndarray) -> np.ndarray:
    """Label log-probabilities from label log-scores (a stable log-softmax)."""
    label_scores = np.asarray(label_scores, dtype=np.float64)
    return label_scores - logsumexp(label_scores, axis=-1)[..., None]


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


def label_indices(labels: Sequence[object] | np.ndarray, names: Sequence[str]) -> np.ndarray:
    """True labels as indices into ``names``; each may be a label name or an index in ``names``' order.

    >>> label_indices(["b", 0, "a"], ["a", "b"]).tolist()
    [1, 0, 0]
    """
    position = {name: i for i, name in enumerate(names)}
    out = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        if isinstance(label, str) and label in position:
            out[i] = position[label]
        elif isinstance(label, (int, np.integer)) and not isinstance(label, bool) and 0 <= label < len(names):
            out[i] = int(label)
        else:
            raise ValueError(f"label {label!r} (item {i}) is neither a label name ({', '.join(names)}) "
                             f"nor an index 0..{len(names) - 1}")
    return out


# --------------------------------------------------------------------------- storage
#
# Not maths, but the two small JSON formats the calibrators persist: reference scores
# (input-independent model outputs, a cache) and calibration files (fitted parameters,
# written by ``lpclassify calibrate``).

REFERENCE_FORMAT = "lpclassify-reference-scores"
CALIBRATION_FORMAT = "lpclassify-calibration"


def reference_cache_dir() -> Path:
    """Where reference scores are cached: ``$LPCLASSIFY_CACHE/calibration``, else beside the model cache."""
    override = os.environ.get("LPCLASSIFY_CACHE")
    if override:
        return Path(override).expanduser() / "calibration"
    from .models import cache_dir

    return cache_dir().parent / "calibration"


def model_identity(path: str | os.PathLike[str] | None) -> dict[str, object] | None:
    """What identifies a model file for caching: its resolved path, size and modification time."""
    if path is None:
        return None
    try:
        resolved = Path(path).resolve()
        stat = resolved.stat()
    except OSError:
        return None
    return {"path": str(resolved), "name": resolved.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def reference_key(model: Mapping[str, object], setting: object) -> str:
    """sha256 over the model's identity and everything else reference scores depend on (as JSON)."""
    blob = json.dumps({"model": dict(model), "setting": setting}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_reference_file(path: Path) -> dict[str, tuple[list[float], list[int]]]:
    """The cached ``{text: (logprobs, n_tokens)}`` entries of one reference file; ``{}`` if absent or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != REFERENCE_FORMAT or data.get("version") != 1:
        return {}
    entries = data.get("entries")
    if not isinstance(entries, dict):
        return {}
    out: dict[str, tuple[list[float], list[int]]] = {}
    for text, entry in entries.items():
        try:
            out[text] = ([float(v) for v in entry["logprobs"]], [int(v) for v in entry["n_tokens"]])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def write_reference_file(path: Path, entries: Mapping[str, tuple[Sequence[float], Sequence[int]]],
                         about: Mapping[str, object]) -> None:
    """Merge ``entries`` into the reference file at ``path`` (atomic replace; a failure only logs)."""
    merged = read_reference_file(path)
    merged.update({text: (list(map(float, lp)), list(map(int, nt))) for text, (lp, nt) in entries.items()})
    document = {"format": REFERENCE_FORMAT, "version": 1, **about,
                "entries": {text: {"logprobs": lp, "n_tokens": nt} for text, (lp, nt) in merged.items()}}
    _write_json_atomic(path, document)


def _write_json_atomic(path: Path, document: object) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=1)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        logging.getLogger("lpclassify").warning("cannot write the reference-score cache %s: %s", path, exc)


def write_calibration_file(path: str | os.PathLike[str], document: Mapping[str, object]) -> None:
    """Write a calibration file (raises ``OSError`` on failure: the caller asked for this file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"format": CALIBRATION_FORMAT, "version": 1, **document}
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def read_calibration_file(path: str | os.PathLike[str]) -> dict[str, object]:
    """Read and check a calibration file; ``ValueError`` says what is wrong, ``OSError`` if unreadable."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
        raise ValueError(f"not an lpclassify calibration file (expected \"format\": \"{CALIBRATION_FORMAT}\")")
    if data.get("version") != 1:
        raise ValueError(f"unsupported calibration file version {data.get('version')!r}")
    if not isinstance(data.get("labels"), list):
        raise ValueError("missing 'labels' (the label names, in order)")
    if "fitted" not in data and "domain" not in data:
        raise ValueError("holds neither 'fitted' parameters nor a 'domain' prior")
    return data
