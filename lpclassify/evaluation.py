"""Evaluate a classifier on labelled texts, and compare every calibration and normalization on one model pass.

>>> from lpclassify import Classifier                                        # doctest: +SKIP
>>> from lpclassify.evaluation import compare, evaluate, score_texts          # doctest: +SKIP
>>> from lpclassify.records import read_labeled                               # doctest: +SKIP
>>> clf = Classifier.from_config("configs/sentiment.yaml")                    # doctest: +SKIP
>>> texts, labels = read_labeled("sst2.jsonl", label_field="label_name", limit=200)  # doctest: +SKIP
>>> raw = score_texts(clf, texts)          # the one model pass               # doctest: +SKIP
>>> evaluate(clf, texts, labels, raw=raw).accuracy                            # doctest: +SKIP
0.83
>>> for row in compare(clf, texts, labels, raw=raw): print(row.as_dict())     # doctest: +SKIP

How each method is evaluated (also in every row's ``note``):

* ``none``, ``contextual``, ``pmi``: exactly what the classifier computes; their reference scores
  (content-free inputs, the neutral context) do not depend on the evaluation texts.
* ``batch``: calibrated per chunk of ``max(4 * runtime.batch_size, 32)`` texts in input order,
  the chunks :meth:`Classifier.classify_many` should calibrate over (chunks under 8 texts stay
  uncalibrated).
* ``domain``: when the classifier has no in-domain texts of its own (``fit_domain`` or a
  calibration file), the random-word inputs are drawn from the *evaluation texts themselves*,
  used as unlabelled in-domain data (labels are never looked at), as Fei et al. (2023) do.
* ``fitted``: in :func:`compare` always out-of-sample: ``fitted`` is 5-fold cross-validated
  (each text's probabilities come from parameters fitted on the other four folds), and
  ``fitted@K`` fits on K texts drawn at random and is scored on the other n-K only (mean of 5
  draws: what a user with a few labelled examples can expect). In
  :func:`evaluate` it uses the classifier's own fitted parameters when it has them (if they
  were fitted on the same texts the numbers are in-sample), else the same cross-validation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import calibration, metrics
from .config import NORMALIZATIONS
from .config.direction import CHANNEL_NORMALIZATIONS, CHANNEL_REFUSED_CALIBRATIONS
from .errors import InputError
from .inputs import Input, chunks, input_words
from .labels import label_indices
from .normalize import safe_log
from .records.writers import json_safe
from .scores import RawScores

if TYPE_CHECKING:
    from .classifier import Classifier

FEW_SHOT = 32
FEW_SHOT_DRAWS = 5


# --------------------------------------------------------------------------- data


# --------------------------------------------------------------------------- scoring


def score_texts(clf: Classifier, texts: Sequence[Input], *, chunk: int = 64,
                progress: Callable[[int, int], None] | None = None) -> RawScores:
    """The one model pass: raw scores of every text (in chunks, to report progress)."""
    parts = []
    done = 0
    for part in chunks(texts, chunk):
        parts.append(clf.raw_scores(part))
        done += len(part)
        if progress is not None:
            progress(done, len(texts))
    return RawScores.concat(parts)


def method_probabilities(clf: Classifier, raw: RawScores, texts: Sequence[Input], y: np.ndarray, method: str,
                         normalize: str, *, use_own_fit: bool = True) -> tuple[np.ndarray, str]:
    """Probabilities of every text under ``method``/``normalize`` and a note saying how they were obtained.

    A method that learns from the texts being evaluated is kept honest by what it says it needs
    (see the module docstring): labels -> cross-validated, the batch -> ``classify_many``'s chunks,
    in-domain texts it lacks -> drawn from the evaluation texts, unlabelled. The rest compute
    exactly what the classifier would.
    """
    method_ = calibration.get(method)
    if method_.needs_labels:
        own = clf.calibration_state.fitted
        if use_own_fit and own is not None and own[1:] == (normalize, clf.config.scoring.label_aggregate):
            return clf.probabilities(raw, method=method, normalize=normalize), \
                f"the classifier's own fit ({own[0].n_examples} examples; in-sample if fitted on these texts)"
        log_probs = safe_log(clf.probabilities(raw, calibrate=False, normalize=normalize))
        return calibration.cross_validated_fit(log_probs, y), f"{calibration.CV_FOLDS}-fold cross-validated"
    if method_.uses_batch:  # the chunks classify_many calibrates over, in input order
        chunk = calibration.batch_chunk_size(clf.config.runtime.batch_size)
        parts = [clf.probabilities(part, method=method, normalize=normalize) for part in raw_chunks(raw, chunk)]
        return np.concatenate(parts), f"per chunk of {chunk} texts (chunks under {calibration.MIN_BATCH} unchanged)"
    if isinstance(method_, calibration.Domain):
        state = clf.calibration_state
        if state.domain_inputs is None and state.domain_stored_prior is None:
            # No in-domain texts of its own: draw the words from the evaluation texts, unlabelled.
            inputs = calibration.domain_inputs([input_words(t) for t in texts])
            prior = calibration.mean_prior(clf.calibrator.uncalibrated(inputs, normalize))
            probs = calibration.apply_prior(clf.probabilities(raw, calibrate=False, normalize=normalize), prior)
            return probs, f"prior from {len(inputs)} random-word inputs drawn from the evaluation texts (unlabelled)"
        return clf.probabilities(raw, method=method, normalize=normalize), "the classifier's domain prior"
    return clf.probabilities(raw, method=method, normalize=normalize), ""


def raw_chunks(raw: RawScores, size: int) -> list[RawScores]:
    """``raw`` in consecutive chunks of ``size`` texts (the last one shorter)."""
    return [raw.rows(slice(start, start + size)) for start in range(0, len(raw), size)]


# --------------------------------------------------------------------------- reports


@dataclass
class EvalReport:
    """Every metric of one method on one labelled set; :meth:`as_dict` is the JSON report."""

    labels: tuple[str, ...]
    method: str
    normalize: str
    n: int
    accuracy: float
    macro_f1: float
    per_label: metrics.PerLabel
    confusion: np.ndarray
    ece: float
    brier: float
    log_loss: float
    selective: list[metrics.Selective]
    reliability: metrics.ReliabilityBins
    probabilities: np.ndarray = field(repr=False)
    y_true: np.ndarray = field(repr=False)
    note: str = ""

    @property
    def y_pred(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    def as_dict(self, *, predictions: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "labels": list(self.labels), "calibration": self.method, "normalize": self.normalize, "n": self.n,
            "accuracy": self.accuracy, "macro_f1": self.macro_f1,
            "per_label": {name: {"precision": float(self.per_label.precision[i]),
                                 "recall": float(self.per_label.recall[i]), "f1": float(self.per_label.f1[i]),
                                 "support": int(self.per_label.support[i])} for i, name in enumerate(self.labels)},
            "confusion_matrix": {"rows": "true label", "columns": "predicted label",
                                 "matrix": self.confusion.tolist()},
            "ece": self.ece, "ece_bins": metrics.ECE_BINS, "brier": self.brier, "log_loss": self.log_loss,
            "selective": [{"threshold": s.threshold, "coverage": s.coverage, "accuracy": json_safe(s.accuracy),
                           "answered": s.n_answered} for s in self.selective],
            "note": self.note,
        }
        if predictions:
            out["predictions"] = [{"true": self.labels[t], "predicted": self.labels[p],
                                   "probabilities": [round(float(v), 6) for v in row]}
                                  for t, p, row in zip(self.y_true, self.y_pred, self.probabilities, strict=True)]
        return out


def report_from_probabilities(labels: Sequence[str], probabilities: np.ndarray, y_true: np.ndarray, *,
                              method: str = "", normalize: str = "", note: str = "",
                              thresholds: Sequence[float] = metrics.DEFAULT_THRESHOLDS) -> EvalReport:
    """Every metric from probabilities and true label indices (no model involved)."""
    k = len(labels)
    y_pred = probabilities.argmax(axis=1)
    return EvalReport(
        labels=tuple(labels), method=method, normalize=normalize, n=len(y_true),
        accuracy=metrics.accuracy(y_true, y_pred), macro_f1=metrics.macro_f1(y_true, y_pred, k),
        per_label=metrics.per_label(y_true, y_pred, k), confusion=metrics.confusion_matrix(y_true, y_pred, k),
        ece=metrics.expected_calibration_error(probabilities, y_true),
        brier=metrics.brier_score(probabilities, y_true), log_loss=metrics.log_loss(probabilities, y_true),
        selective=metrics.selective_accuracy(probabilities, y_true, thresholds),
        reliability=metrics.reliability_bins(probabilities, y_true), probabilities=probabilities, y_true=y_true,
        note=note)


def _prepare(clf: Classifier, texts: Sequence[Input], labels: Sequence[Any], raw: RawScores | None,
             label_order: Sequence[str] | None) -> tuple[RawScores, np.ndarray]:
    if clf.config.decision.mode != "single":
        raise InputError("evaluation supports single-label configs (decision.mode: single)")
    if len(texts) != len(labels) or not texts:
        raise InputError(f"need as many labels as texts, at least one (got {len(texts)} texts, {len(labels)} labels)")
    y = label_indices(labels, clf.config.label_names, label_order)
    if raw is None:
        raw = score_texts(clf, texts)
    elif len(raw.logprobs) != len(texts):
        raise InputError(f"raw scores hold {len(raw.logprobs)} texts, not {len(texts)}")
    return raw, y


def evaluate(clf: Classifier, texts: Sequence[Input], labels: Sequence[Any], *, raw: RawScores | None = None,
             method: str | None = None, normalize: str | None = None, label_order: Sequence[str] | None = None,
             thresholds: Sequence[float] = metrics.DEFAULT_THRESHOLDS) -> EvalReport:
    """Metrics of the classifier as configured (or with ``method``/``normalize`` overridden).

    ``labels`` are label names or indices (see :func:`lpclassify.labels.label_indices`); ``raw`` reuses scores
    from :func:`score_texts` instead of running the model. The headline accuracy is argmax
    accuracy; ``selective`` shows coverage and accuracy when abstaining under each threshold
    (the config's own ``decision.threshold`` is included).
    """
    raw, y = _prepare(clf, texts, labels, raw, label_order)
    configured = method is None and normalize is None
    method = method or clf.config.scoring.calibration
    normalize = normalize or clf.config.scoring.normalize
    probs, note = method_probabilities(clf, raw, texts, y, method, normalize)
    if configured and raw.rerank is not None:  # as the classifier decides: the top labels reranked
        probs = clf.reranked(raw, probs)
        note = "; ".join(filter(None, (note, "top labels reranked (scoring.rerank)")))
    thresholds = sorted(set(thresholds) | {clf.config.decision.threshold})
    return report_from_probabilities(clf.config.label_names, probs, y, method=method, normalize=normalize,
                                     note=note, thresholds=thresholds)


@dataclass(frozen=True)
class CompareRow:
    """One (calibration, normalization) pair's headline metrics."""

    method: str
    normalize: str
    n: int
    accuracy: float
    macro_f1: float
    ece: float
    brier: float
    log_loss: float
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compare(clf: Classifier, texts: Sequence[Input], labels: Sequence[Any], *, raw: RawScores | None = None,
            label_order: Sequence[str] | None = None, methods: Sequence[str] | None = None,
            normalizations: Sequence[str] = NORMALIZATIONS, few_shot: int = FEW_SHOT) -> list[CompareRow]:
    """Every calibration method x every normalization, from ONE model pass over ``texts``.

    The only other model calls are for input-independent reference texts (content-free
    inputs, the neutral context, the domain's random-word inputs), cached on disk. ``fitted``
    is 5-fold cross-validated; with ``few_shot`` = K > 0 and at least 2K texts, an extra ``fitted@K``
    row fits on K random texts and is scored on the others (mean of 5 draws). The module
    docstring says how each method is evaluated.
    """
    raw, y = _prepare(clf, texts, labels, raw, label_order)
    names = clf.config.label_names
    rows = []
    channel = clf.config.scoring.channel  # some settings have no meaning for P(input | label): see config.direction
    for normalize in (n for n in normalizations if not channel or n in CHANNEL_NORMALIZATIONS):
        for method in methods or calibration.method_names():
            if channel and method in CHANNEL_REFUSED_CALIBRATIONS:
                continue
            probs, note = method_probabilities(clf, raw, texts, y, method, normalize, use_own_fit=False)
            rows.append(_row(names, probs, y, method, normalize, note))
            if method == "fitted" and few_shot > 0 and 2 * few_shot <= len(y):
                log_probs = safe_log(clf.probabilities(raw, calibrate=False, normalize=normalize))
                rows.append(few_shot_row(names, log_probs, y, few_shot, normalize))
    return rows


def few_shot_row(names: Sequence[str], log_probs: np.ndarray, y: np.ndarray, k: int, normalize: str, *,
                 draws: int = FEW_SHOT_DRAWS) -> CompareRow:
    """Fitted calibration from K labelled examples: fit on K drawn at random, score the other n-K;
    the metrics are averaged over ``draws`` draws (seeds 0, 1, ...), since one draw of a few
    examples can be very lucky or very unlucky (a file's first K rows are often one label)."""
    rows = []
    for seed in range(draws):
        order = np.random.default_rng(seed).permutation(len(y))
        train, test = order[:k], order[k:]
        fit = calibration.fit_bias_temperature(log_probs[train], y[train])
        rows.append(_row(names, fit.apply(log_probs[test]), y[test], "", normalize, ""))
    mean = {name: float(np.mean([getattr(r, name) for r in rows]))
            for name in ("accuracy", "macro_f1", "ece", "brier", "log_loss")}
    spread = float(np.std([r.accuracy for r in rows]))
    return CompareRow(f"fitted@{k}", normalize, len(y) - k, **mean,
                      note=f"fitted on {k} random texts, scored on the other {len(y) - k}; mean of {draws} draws "
                           f"(accuracy std {spread:.3f})")


def _row(names: Sequence[str], probs: np.ndarray, y: np.ndarray, method: str, normalize: str, note: str) -> CompareRow:
    report = report_from_probabilities(names, probs, y)
    return CompareRow(method, normalize, report.n, report.accuracy, report.macro_f1, report.ece, report.brier,
                      report.log_loss, note)
