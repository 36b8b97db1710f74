"""Evaluate a classifier on labelled texts, and compare every calibration and normalization on one model pass.

>>> from lpclassify import Classifier                                        # doctest: +SKIP
>>> from lpclassify.evaluation import compare, evaluate, read_labeled_jsonl   # doctest: +SKIP
>>> clf = Classifier.from_config("configs/sentiment.yaml")                    # doctest: +SKIP
>>> texts, labels = read_labeled_jsonl("sst2.jsonl", label_field="label_name", limit=200)  # doctest: +SKIP
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

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import calibration, metrics
from .config import CALIBRATIONS, NORMALIZATIONS
from .errors import InputError, LpclassifyError

if TYPE_CHECKING:
    from .classifier import Classifier, RawScores

CV_FOLDS = 5
FEW_SHOT = 32
FEW_SHOT_DRAWS = 5
CV_SEED = 0


class MissingDependencyError(LpclassifyError):
    """An optional extra (e.g. ``lpclassify[plot]``) is needed for what was asked."""


# --------------------------------------------------------------------------- data


def read_labeled_jsonl(path: str | Path, *, text_field: str = "text", label_field: str = "label",
                       limit: int | None = None) -> tuple[list[str], list[str | int]]:
    """Texts and labels (names or integer indices, as stored) from a JSON-lines file.

    Every problem is an :class:`InputError` naming the file and line.
    """
    path = Path(path)
    texts: list[str] = []
    labels: list[str | int] = []
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if limit is not None and len(texts) >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise InputError(f"{path}:{number}: not valid JSON ({exc})") from None
                if not isinstance(record, dict):
                    raise InputError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
                for name in (text_field, label_field):
                    if name not in record:
                        raise InputError(f"{path}:{number}: no field {name!r} (fields: {', '.join(record)}); "
                                         f"use --text-field / --label-field")
                text, label = record[text_field], record[label_field]
                if not isinstance(text, str) or not text.strip():
                    raise InputError(f"{path}:{number}: field {text_field!r} must be a non-empty string")
                if isinstance(label, bool) or not isinstance(label, (str, int)):
                    raise InputError(f"{path}:{number}: field {label_field!r} must be a label name or an "
                                     f"integer index, got {label!r}")
                texts.append(text)
                labels.append(label)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from None
    if not texts:
        raise InputError(f"{path}: no records")
    return texts, labels


def to_indices(labels: Sequence[Any], names: Sequence[str], label_order: Sequence[str] | None = None) -> np.ndarray:
    """True labels as indices into ``names``. Names are matched as they are; an integer ``i`` means
    ``label_order[i]`` when given (the dataset's own order), else ``names[i]`` (the config's order)."""
    if label_order is not None:
        unknown = [name for name in label_order if name not in names]
        if unknown:
            raise InputError(f"label order names {unknown}, which the config does not have ({', '.join(names)})")
        labels = [label_order[label] if isinstance(label, (int, np.integer)) and not isinstance(label, bool)
                  and 0 <= label < len(label_order) else label for label in labels]
    try:
        return calibration.label_indices(labels, names)
    except ValueError as exc:
        raise InputError(str(exc)) from None


# --------------------------------------------------------------------------- scoring


def score_texts(clf: Classifier, texts: Sequence[str], *, chunk: int = 64,
                progress: Callable[[int, int], None] | None = None) -> RawScores:
    """The one model pass: raw scores of every text (in chunks, to report progress)."""
    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(clf.raw_scores(list(texts[start:start + chunk])))
        if progress is not None:
            progress(min(start + chunk, len(texts)), len(texts))
    return concat_raw(parts)


def concat_raw(parts: Sequence[RawScores]) -> RawScores:
    from .classifier import RawScores

    if len(parts) == 1:
        return parts[0]
    return RawScores(np.concatenate([p.logprobs for p in parts]), np.concatenate([p.n_tokens for p in parts]),
                     parts[0].n_chars, np.concatenate([p.truncated for p in parts]),
                     [row for p in parts for row in p.scores], np.concatenate([p.n_chunks for p in parts]))


def slice_raw(raw: RawScores, rows: slice | np.ndarray) -> RawScores:
    from .classifier import RawScores

    index = np.arange(len(raw.logprobs))[rows]
    return RawScores(raw.logprobs[index], raw.n_tokens[index], raw.n_chars, raw.truncated[index],
                     [raw.scores[i] for i in index], raw.n_chunks[index] if raw.n_chunks is not None else None)


def _batch_chunk(clf: Classifier) -> int:
    """Texts per batch-calibration batch: classify_many's chunk (4 x runtime.batch_size), at least 32."""
    return max(max(1, clf.config.runtime.batch_size) * 4, calibration.BATCH_CHUNK)


def _uncalibrated_log_probs(clf: Classifier, raw: RawScores, normalize: str) -> np.ndarray:
    return np.log(np.clip(clf.probabilities(raw, calibrate=False, normalize=normalize), 1e-300, None))


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
        fit = calibration.fit_bias_temperature(log_probs[~held], y[~held])
        out[held] = fit.apply(log_probs[held])
    return out


def method_probabilities(clf: Classifier, raw: RawScores, texts: Sequence[str], y: np.ndarray, method: str,
                         normalize: str, *, use_own_fit: bool = True) -> tuple[np.ndarray, str]:
    """Probabilities of every text under ``method``/``normalize`` and a note saying how they were obtained."""
    if method == "batch":
        chunk = _batch_chunk(clf)
        parts = [clf.probabilities(slice_raw(raw, slice(s, s + chunk)), method="batch", normalize=normalize)
                 for s in range(0, len(y), chunk)]
        return np.concatenate(parts), f"per chunk of {chunk} texts (chunks under {calibration.MIN_BATCH} unchanged)"
    if method == "domain":
        state = clf._calibration_state()
        if state.domain_inputs is not None or state.domain_stored_prior is not None:
            return clf.probabilities(raw, method="domain", normalize=normalize), "the classifier's domain prior"
        inputs = calibration.domain_inputs(list(texts))
        prior = calibration.mean_prior(
            clf.probabilities(clf.reference_scores(inputs), calibrate=False, normalize=normalize))
        probs = calibration.apply_prior(clf.probabilities(raw, calibrate=False, normalize=normalize), prior)
        return probs, f"prior from {len(inputs)} random-word inputs drawn from the evaluation texts (unlabelled)"
    if method == "fitted":
        own = clf._calibration_state().fitted
        if use_own_fit and own is not None and own[1:] == (normalize, clf.config.scoring.aggregate):
            return clf.probabilities(raw, method="fitted", normalize=normalize), \
                f"the classifier's own fit ({own[0].n_examples} examples; in-sample if fitted on these texts)"
        probs = cross_validated_fit(_uncalibrated_log_probs(clf, raw, normalize), y)
        return probs, f"{CV_FOLDS}-fold cross-validated"
    return clf.probabilities(raw, method=method, normalize=normalize), ""


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
            "selective": [{"threshold": s.threshold, "coverage": s.coverage, "accuracy": _json_float(s.accuracy),
                           "answered": s.n_answered} for s in self.selective],
            "note": self.note,
        }
        if predictions:
            out["predictions"] = [{"true": self.labels[t], "predicted": self.labels[p],
                                   "probabilities": [round(float(v), 6) for v in row]}
                                  for t, p, row in zip(self.y_true, self.y_pred, self.probabilities, strict=True)]
        return out


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value


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


def _prepare(clf: Classifier, texts: Sequence[str], labels: Sequence[Any], raw: RawScores | None,
             label_order: Sequence[str] | None) -> tuple[RawScores, np.ndarray]:
    if clf.config.decision.mode != "single":
        raise InputError("evaluation supports single-label configs (decision.mode: single)")
    if len(texts) != len(labels) or not texts:
        raise InputError(f"need as many labels as texts, at least one (got {len(texts)} texts, {len(labels)} labels)")
    y = to_indices(labels, clf.config.label_names, label_order)
    if raw is None:
        raw = score_texts(clf, texts)
    elif len(raw.logprobs) != len(texts):
        raise InputError(f"raw scores hold {len(raw.logprobs)} texts, not {len(texts)}")
    return raw, y


def evaluate(clf: Classifier, texts: Sequence[str], labels: Sequence[Any], *, raw: RawScores | None = None,
             method: str | None = None, normalize: str | None = None, label_order: Sequence[str] | None = None,
             thresholds: Sequence[float] = metrics.DEFAULT_THRESHOLDS) -> EvalReport:
    """Metrics of the classifier as configured (or with ``method``/``normalize`` overridden).

    ``labels`` are label names or indices (see :func:`to_indices`); ``raw`` reuses scores
    from :func:`score_texts` instead of running the model. The headline accuracy is argmax
    accuracy; ``selective`` shows coverage and accuracy when abstaining under each threshold
    (the config's own ``decision.threshold`` is included).
    """
    raw, y = _prepare(clf, texts, labels, raw, label_order)
    method = method or clf.config.scoring.calibration
    normalize = normalize or clf.config.scoring.normalize
    probs, note = method_probabilities(clf, raw, texts, y, method, normalize)
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


def compare(clf: Classifier, texts: Sequence[str], labels: Sequence[Any], *, raw: RawScores | None = None,
            label_order: Sequence[str] | None = None, methods: Sequence[str] = CALIBRATIONS,
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
    for normalize in normalizations:
        for method in methods:
            probs, note = method_probabilities(clf, raw, texts, y, method, normalize, use_own_fit=False)
            rows.append(_row(names, probs, y, method, normalize, note))
            if method == "fitted" and few_shot > 0 and 2 * few_shot <= len(y):
                rows.append(few_shot_row(names, _uncalibrated_log_probs(clf, raw, normalize), y, few_shot,
                                         normalize))
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


# --------------------------------------------------------------------------- plots


def write_plots(report: EvalReport, directory: str | Path, *, stem: str = "") -> list[Path]:
    """A reliability diagram and a confusion-matrix heat map as PNG files in ``directory``."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("plots need matplotlib: pip install 'lpclassify[plot]'") from None
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the plot directory {directory}: {exc.strerror}") from None
    prefix = f"{stem}-" if stem else ""
    title = f"{report.method} calibration, {report.normalize} normalization, n={report.n}"

    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    bins = report.reliability
    centers = (bins.edges[:-1] + bins.edges[1:]) / 2
    width = bins.edges[1] - bins.edges[0]
    filled = bins.count > 0
    ax.bar(centers[filled], bins.accuracy[filled], width=width * 0.9, color="tab:blue", label="accuracy in bin")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.plot(centers[filled], bins.confidence[filled], "_", markersize=14, markeredgewidth=2.5, color="tab:red",
            label="mean confidence in bin")
    ax.bar(centers[filled], bins.count[filled] / max(report.n, 1), width=width * 0.9, color="black", alpha=0.25,
           label="share of texts in bin")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="top-label confidence", ylabel="accuracy",
           title=f"Reliability (ECE {report.ece:.3f})\n{title}")
    ax.legend(loc="upper left")
    reliability = directory / f"{prefix}reliability.png"
    fig.savefig(reliability, dpi=120, bbox_inches="tight")

    fig = Figure(figsize=(1.2 * len(report.labels) + 3, 1.1 * len(report.labels) + 2.5))
    ax = fig.add_subplot()
    matrix = report.confusion
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = range(len(report.labels))
    ax.set_xticks(ticks, report.labels, rotation=45, ha="right")
    ax.set_yticks(ticks, report.labels)
    peak = matrix.max() if matrix.size else 0
    for i in ticks:
        for j in ticks:
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > peak / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=f"Confusion (accuracy {report.accuracy:.3f})\n{title}")
    confusion = directory / f"{prefix}confusion.png"
    fig.savefig(confusion, dpi=120, bbox_inches="tight")
    return [reliability, confusion]
