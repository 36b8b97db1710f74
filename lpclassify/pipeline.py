"""Raw completion scores -> calibrated label probabilities: the one pipeline every caller runs.

:func:`run` takes a batch's score arrays (:class:`~lpclassify.scores.RawScores` or anything with
``logprobs``, ``n_tokens`` and ``n_chars``), which label each column speaks for (:class:`Columns`),
a :class:`Setting` (normalization, aggregation, calibration method, per-label bias, temperature)
and what the method may need (:class:`References`: reference texts' scores, fitted state), and
returns a :class:`Trace` holding every intermediate array. It is pure numpy: no model, no disk.
The classifier (through :class:`~lpclassify.calibrator.Calibrator`, which keeps the state),
``explain``, evaluation, Ray's actors and ``tune``'s search all compute probabilities here.

The steps, in order:

1. the method's completion-score step (PMI subtracts each completion's score after a neutral prompt);
2. normalization per completion (``sum``, ``mean`` per token, ``chars`` per character);
3. aggregation per label (``logsumexp`` or ``max``; multi-label: a yes and a no score per label);
4. the method's label step (a prior divided out, a fitted bias and temperature, ...);
5. the setting's own per-label bias and temperature (:func:`~lpclassify.normalize.label_bias`).

>>> import numpy as np
>>> scores = Arrays(np.log([[0.2, 0.6, 0.2]]), np.ones((1, 3)), np.ones(3))
>>> trace = run(scores, Columns((0, 1, 1), 2), Setting(aggregate="max"))
>>> trace.label_scores.round(3).tolist(), trace.probabilities.round(3).tolist()
([[-1.609, -0.511]], [[0.25, 0.75]])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from . import calibration
from .calibration.base import Context
from .calibration.state import CalibrationState
from .normalize import aggregate, label_bias, normalize, softmax, yes_bias


class ScoreArrays(Protocol):
    """What the pipeline reads of raw scores (``RawScores`` has it)."""

    @property
    def logprobs(self) -> np.ndarray: ...  # (n_texts, n_columns) summed log-probs

    @property
    def n_tokens(self) -> np.ndarray: ...  # (n_texts, n_columns)

    @property
    def n_chars(self) -> np.ndarray: ...  # (n_columns,)


@dataclass(frozen=True)
class Arrays:
    """Plain score arrays (a :class:`ScoreArrays` without the per-token detail of ``RawScores``)."""

    logprobs: np.ndarray
    n_tokens: np.ndarray
    n_chars: np.ndarray


@dataclass(frozen=True)
class Columns:
    """Which label each score column speaks for; multi-label, also whether it answers yes (``answers``)."""

    owners: tuple[int, ...]
    n_labels: int
    answers: tuple[bool, ...] | None = None  # None: single-label, the labels' completions compete

    @property
    def mode(self) -> str:
        return "single" if self.answers is None else "multi"


@dataclass(frozen=True)
class Setting:
    """One way from scores to probabilities; new search dimensions are new fields with a neutral default."""

    normalize: str = "sum"
    aggregate: str = "logsumexp"
    method: str = "none"
    bias: tuple[float, ...] = ()  # nats per label; () = none
    temperature: float = 1.0

    def uncalibrated(self) -> Setting:
        """The same normalization and aggregation with no method, bias or temperature."""
        return replace(self, method="none", bias=(), temperature=1.0)


def _no_references(texts: Sequence[str]) -> ScoreArrays:
    raise ValueError(f"no reference scores were supplied for {list(texts)!r}")


@dataclass(frozen=True)
class References:
    """What a method may need besides the scores it calibrates, prepared beforehand.

    ``scores(texts)`` gives the raw scores of input-independent texts (content-free inputs, the
    neutral text, domain inputs: see ``Calibration.reference_texts``) in the same columns;
    ``state()`` the fitted parameters and domain inputs (called only by methods that use them).
    """

    scores: Callable[[Sequence[str]], ScoreArrays] = _no_references
    content_free: tuple[str, ...] = ()
    state: Callable[[], CalibrationState] = field(default=CalibrationState)
    source: str = "<mapping>"  # for messages: where the config came from
    model_name: str | None = None
    # Uncalibrated probabilities of reference texts already worked out, for callers that run the
    # pipeline many times over the same references (a top-k search runs it after every decode).
    memo: dict[tuple[Any, ...], np.ndarray] | None = None


@dataclass(frozen=True)
class Trace:
    """Every intermediate array of one :func:`run`; rows are texts."""

    setting: Setting
    normalized: np.ndarray  # (n, n_columns): the raw completion scores, normalized
    label_scores: np.ndarray  # (n, n_labels): aggregated per label (multi-label: the yes scores)
    no_scores: np.ndarray | None  # multi-label: the no scores
    offsets: np.ndarray | None  # (n_columns,): what the method subtracted from every raw completion score
    method_scores: np.ndarray  # the label scores the method calibrated (label_scores unless it had offsets)
    prior: np.ndarray | None  # (n_labels,): the prior the method divided out
    uncalibrated: np.ndarray  # (n, n_labels): softmax of label_scores (no method, bias or temperature)
    calibrated: np.ndarray  # after the method, before the setting's bias and temperature
    probabilities: np.ndarray  # after the bias and temperature: what decisions use


def context(columns: Columns, setting: Setting, references: References,
            batch_prior: np.ndarray | None = None) -> Context:
    """What a method sees besides the scores (reference probabilities come from this same pipeline)."""
    plain = setting.uncalibrated()
    return Context(
        normalize=setting.normalize, aggregate=setting.aggregate, mode=columns.mode,
        content_free=references.content_free, source=references.source, model_name=references.model_name,
        load_state=references.state, raw_references=references.scores,  # type: ignore[arg-type]
        uncalibrated=lambda texts: reference_probabilities(texts, columns, plain, references),
        batch_prior=batch_prior)


def reference_probabilities(texts: Sequence[str], columns: Columns, plain: Setting,
                            references: References) -> np.ndarray:
    """Uncalibrated probabilities of reference texts under ``plain`` (from ``references.memo`` when there)."""
    key = (tuple(texts), columns, plain)
    if references.memo is not None and (known := references.memo.get(key)) is not None:
        return known
    probabilities = run(references.scores(texts), columns, plain, references).uncalibrated
    if references.memo is not None:
        probabilities.setflags(write=False)  # shared by every later run
        references.memo[key] = probabilities
    return probabilities


def run(scores: ScoreArrays, columns: Columns, setting: Setting, references: References = References(), *,
        batch_prior: np.ndarray | None = None) -> Trace:
    """Scores -> probabilities under ``setting`` (see the module docstring); ``batch_prior``: batch calibration's."""
    method = calibration.get(setting.method)
    ctx = context(columns, setting, references, batch_prior)
    normalized = normalize(scores.logprobs, scores.n_tokens, scores.n_chars, setting.normalize)
    adjusted = method.completion_scores(scores.logprobs, ctx)
    offsets = method.offsets(ctx) if adjusted is not scores.logprobs else None
    method_normalized = normalized if adjusted is scores.logprobs else normalize(
        adjusted, scores.n_tokens, scores.n_chars, setting.normalize)
    bias = setting.bias or (0.0,) * columns.n_labels
    if columns.answers is not None:  # multi-label: each label's yes against its no, uncalibrated
        yes, no = yes_no_scores(normalized, columns, setting.aggregate)
        uncalibrated = softmax(np.stack([yes, no], axis=-1))[..., 0]
        calibrated = uncalibrated
        if method_normalized is not normalized:
            m_yes, m_no = yes_no_scores(method_normalized, columns, setting.aggregate)
            calibrated = softmax(np.stack([m_yes, m_no], axis=-1))[..., 0]
        return Trace(setting, normalized, yes, no, offsets, yes, None, uncalibrated, calibrated,
                     yes_bias(calibrated, bias, setting.temperature))
    label = aggregate(normalized, columns.owners, columns.n_labels, setting.aggregate)
    method_label = label if method_normalized is normalized else aggregate(
        method_normalized, columns.owners, columns.n_labels, setting.aggregate)
    calibrated, prior = method.calibrate(method_label, ctx)
    return Trace(setting, normalized, label, None, offsets, method_label, prior, softmax(label), calibrated,
                 label_bias(calibrated, bias, setting.temperature))


def yes_no_scores(normalized: np.ndarray, columns: Columns, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Each label's yes score and no score (multi-label mode)."""
    assert columns.answers is not None
    yes = aggregate(normalized, [o if a else -1 for o, a in zip(columns.owners, columns.answers, strict=True)],
                    columns.n_labels, method)
    no = aggregate(normalized, [o if not a else -1 for o, a in zip(columns.owners, columns.answers, strict=True)],
                   columns.n_labels, method)
    return yes, no
