"""The one small interface every calibration method implements, and what it may ask for.

A method sees a text's scores at two points: completion scores before normalization
(:meth:`Calibration.completion_scores`; PMI subtracts a neutral context's scores there, which it
also reports as :meth:`Calibration.offsets`) and label scores before the softmax
(:meth:`Calibration.calibrate`: a prior divided out, a fitted bias and temperature). What a method
needs beyond the text comes through :class:`Context`, prepared before the maths runs, so the maths
never reaches the model or the disk. Each method says what it needs: input-independent reference
texts (:meth:`Calibration.reference_texts`, scored once and cached), the batch being classified
(``uses_batch``) or labelled examples (``needs_labels``: such a method cannot be chosen without
labels, so ``tune`` does not search it). The maths that runs the methods is :mod:`lpclassify.pipeline`.

This layer knows no config type and no classifier: :class:`Context` carries the few settings a
method reads, as plain values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..normalize import softmax

if TYPE_CHECKING:
    from ..scores import RawScores
    from .state import CalibrationState


@dataclass(frozen=True)
class Context:
    """Everything a method may use besides the scores it calibrates.

    ``uncalibrated(texts)`` gives the uncalibrated label probabilities of reference texts
    (already scored: see :meth:`Calibration.reference_texts`) under this call's normalization
    and aggregation; ``raw_references(texts)`` their raw completion log-probs. ``content_free``,
    ``mode`` and ``source`` are the config's ``scoring.content_free``, ``decision.mode`` and
    where it came from (for messages).
    """

    normalize: str
    aggregate: str
    mode: str
    content_free: tuple[str, ...]
    source: str
    model_name: str | None
    load_state: Callable[[], CalibrationState]  # read lazily: only methods that need it load the calibration file
    uncalibrated: Callable[[Sequence[str]], np.ndarray]
    raw_references: Callable[[Sequence[str]], RawScores]
    batch_prior: np.ndarray | None = None

    @property
    def state(self) -> CalibrationState:
        return self.load_state()


class Calibration:
    """A calibration method. Subclasses set ``name`` and override what they change; the defaults do nothing."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    needs_labels: ClassVar[bool] = False  # learns from labelled examples (``fitted``): not chosen label-free
    uses_batch: ClassVar[bool] = False  # depends on the other texts classified with it (``batch``)

    def reference_texts(self, content_free: Sequence[str], mode: str, state: CalibrationState) -> tuple[str, ...]:
        """Input-independent texts whose scores this method needs (scored once, cached)."""
        return ()

    def offsets(self, context: Context) -> np.ndarray | None:
        """What this method subtracts from every text's raw completion log-probs ``(n_candidates,)``, if anything."""
        return None

    def completion_scores(self, logprobs: np.ndarray, context: Context) -> np.ndarray:
        """Raw completion log-probs ``(n, n_candidates)`` -> adjusted ones, before normalization."""
        offsets = self.offsets(context)
        return logprobs if offsets is None else np.asarray(logprobs, dtype=np.float64) - offsets

    def probabilities(self, label_scores: np.ndarray, context: Context) -> np.ndarray:
        """Label scores ``(n, n_labels)`` -> calibrated label probabilities."""
        return softmax(label_scores)

    def calibrate(self, label_scores: np.ndarray, context: Context) -> tuple[np.ndarray, np.ndarray | None]:
        """Calibrated label probabilities and the prior divided out to get them (None: no prior)."""
        return self.probabilities(label_scores, context), None

    def __repr__(self) -> str:
        return f"<calibration {self.name}>"


class NoCalibration(Calibration):
    name = "none"
    summary = "softmax of the label scores as they are"
