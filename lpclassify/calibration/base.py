"""The one small interface every calibration method implements, and what it may ask for.

A method sees a text's scores at two points: completion scores before normalization
(:meth:`Calibration.completion_scores`; PMI subtracts a neutral context there) and label
scores before the softmax (:meth:`Calibration.probabilities`; prior division, fitted bias and
temperature). What a method needs beyond the text (reference scores of content-free inputs,
fitted parameters) comes through :class:`Context`, prepared before the maths runs, so the
maths never reaches the model or the disk. A method names the input-independent texts it needs
(:meth:`Calibration.reference_texts`); the classifier scores those once, caches them and ships
them with the context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..normalize import softmax

if TYPE_CHECKING:
    from ..classifier import Classifier
    from ..config import Config
    from ..inputs import Input
    from ..scores import RawScores
    from .state import CalibrationState


@dataclass(frozen=True)
class Context:
    """Everything a method may use besides the scores it calibrates.

    ``uncalibrated(texts)`` gives the uncalibrated label probabilities of reference texts
    (already scored: see :meth:`Calibration.reference_texts`) under this call's normalization;
    ``neutral(texts)`` their raw completion log-probs.
    """

    config: Config
    load_state: Callable[[], CalibrationState]  # read lazily: only methods that need it load the calibration file
    normalize: str
    model_name: str | None
    uncalibrated: Callable[[Sequence[str]], np.ndarray]
    raw_references: Callable[[Sequence[str]], RawScores]
    batch_prior: np.ndarray | None = None

    @property
    def state(self) -> CalibrationState:
        return self.load_state()

    @property
    def aggregate(self) -> str:
        return self.config.scoring.aggregate


class Calibration:
    """A calibration method. Subclasses set ``name`` and override what they change; the defaults do nothing."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def reference_texts(self, config: Config, state: CalibrationState) -> tuple[str, ...]:
        """Input-independent texts whose scores this method needs (scored once, cached)."""
        return ()

    def completion_scores(self, logprobs: np.ndarray, context: Context) -> np.ndarray:
        """Raw completion log-probs ``(n, n_candidates)`` -> adjusted ones, before normalization."""
        return logprobs

    def probabilities(self, label_scores: np.ndarray, context: Context) -> np.ndarray:
        """Label scores ``(n, n_labels)`` -> calibrated label probabilities."""
        return softmax(label_scores)

    def out_of_sample(self, clf: Classifier, raw: RawScores, texts: Sequence[Input], y: np.ndarray,
                      normalize: str, *, use_own_fit: bool = True) -> tuple[np.ndarray, str]:
        """Probabilities of labelled texts for evaluation, with a note saying how they were obtained.

        Methods that learn from the texts being evaluated (a batch mean, a fit) override this to
        keep the estimate honest; the rest compute exactly what the classifier would.
        """
        return clf.probabilities(raw, method=self.name, normalize=normalize), ""

    def __repr__(self) -> str:
        return f"<calibration {self.name}>"


class NoCalibration(Calibration):
    name = "none"
    summary = "softmax of the label scores as they are"
