"""The public classifier: a scorer, a calibrator and a decision, composed.

>>> from lpclassify import Classifier                                 # doctest: +SKIP
>>> clf = Classifier.from_config("sentiment")                          # doctest: +SKIP
>>> clf.classify("An absolute joy from start to finish.").label       # doctest: +SKIP
'positive'

* :class:`~lpclassify.scorer.Scorer` -- texts -> raw completion log-probs (the only model calls);
* :class:`~lpclassify.calibrator.Calibrator` -- raw scores -> calibrated label probabilities;
* :func:`~lpclassify.decision.decide` -- probabilities -> predictions.

It never reads argv, prints or exits: I/O lives in :mod:`lpclassify.cli` and :mod:`lpclassify.runs`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import calibration
from .backends.base import Backend
from .calibration import CalibrationState, FittedCalibration
from .calibrator import Calibrator
from .config import Config, load_config, with_runtime
from .decision import Prediction, decide
from .errors import InputError
from .inputs import Input, chunks, is_blank
from .labels import label_indices
from .rerank import Reranker, combine
from .scorer import Scorer
from .scores import RawScores
from .tokenization import EncodedText
from .top_k import search_predictions, searchable

log = logging.getLogger("lpclassify")

if TYPE_CHECKING:
    from .explanation import Explanation


class Classifier:
    """Zero-shot classifier: render a prompt per text, score each label's completions, decide."""

    def __init__(self, config: Config, backend: Backend) -> None:
        self.backend = backend
        self.scorer = Scorer(config, backend)
        self.calibrator = Calibrator(self.scorer, backend.identity())
        self.classes_ = np.array(config.label_names)
        self.reranker = Reranker(config, backend, self.scorer.lock) if config.scoring.rerank is not None else None
        self._search_notice = False

    @classmethod
    def from_config(cls, config: str | Path | Mapping[str, Any] | Config, model: str | None = None, *,
                    backend: Backend | None = None, download: bool = False, verbose: bool = False,
                    **runtime: Any) -> Classifier:
        """Load a config (a path, a shipped config's name such as ``"sentiment"``, a mapping or a
        :class:`Config`) and its model.

        ``model`` overrides the config's model (a registry name or a ``.gguf`` path);
        ``runtime`` overrides ``runtime.*`` settings such as ``batch_size`` or ``threads``, checked as the
        config file's are (``ConfigError`` naming ``runtime.<name>`` for a bad value or an unknown name).
        """
        config = with_runtime(load_config(config), runtime)  # a bad value: ConfigError naming runtime.<name>
        if backend is None:
            from .backends.shared import runtime_backend
            from .models import resolve_model

            path = resolve_model(model or config.model, download=download)
            backend = runtime_backend(path, config.runtime, verbose=verbose)
        return cls(config, backend)

    @classmethod
    def from_labels(cls, labels: Sequence[str] | Mapping[str, Any], prompt: str | None = None,
                    model: str | None = None, *, multi_label: bool = False, backend: Backend | None = None,
                    download: bool = False, verbose: bool = False, **settings: Any) -> Classifier:
        """A classifier for a label set, without a config file (Hugging Face's ``candidate_labels``).

        ``labels``: label names (each label's completion is ``" " + name``) or a config's ``labels``
        mapping. ``prompt`` defaults to :data:`~lpclassify.labelsets.DEFAULT_LABELS_PROMPT`, which
        lists the labels (or :data:`~lpclassify.config.DEFAULT_MULTI_PROMPT` with ``multi_label``).
        ``settings`` are further config sections (``scoring``, ``decision``, ``runtime``, ``name``...),
        merged over the defaults (contextual calibration). See :mod:`lpclassify.labelsets`.
        """
        from .labelsets import labels_config

        config = labels_config(labels, prompt, model, multi_label=multi_label, **settings)
        return cls.from_config(config, model, backend=backend, download=download, verbose=verbose)

    @property
    def config(self) -> Config:
        """The config in use (``fit``/``fit_domain`` switch its ``scoring.calibration``)."""
        return self.calibrator.config

    # ------------------------------------------------------------------ scoring

    def prompts(self, text: Input) -> list[tuple[str, str]]:
        """The (prompt, completion) pairs scored for ``text`` (or a record of fields), one per candidate."""
        return self.scorer.prompts(text)

    def encode(self, text: Input) -> tuple[EncodedText, bool]:
        """Tokenize a text's candidates, shortened if they do not fit (the first window in chunk mode)."""
        windows, truncated = self.scorer.encode_windows(text)
        return windows[0], truncated

    def encode_windows(self, text: Input) -> tuple[list[EncodedText], bool]:
        return self.scorer.encode_windows(text)

    def raw_scores(self, texts: Sequence[Input], *, reference: bool = False) -> RawScores:
        """Summed log-probs of every candidate for every text: one model pass (``reference``: the oracle's);
        with ``scoring.rerank``, then the channel scores of each text's top labels (:meth:`rerank`)."""
        return self.rerank(self.scorer.raw_scores(texts, reference=reference), texts, reference=reference)

    def rerank(self, raw: RawScores, texts: Sequence[Input], *, reference: bool = False) -> RawScores:
        """``raw`` (direct scores of ``texts``) with :attr:`RawScores.rerank` filled in: log p(text | label)
        for each text's ``scoring.rerank.top`` most probable labels. Without ``scoring.rerank``: ``raw``."""
        if self.reranker is None:
            return raw
        self.calibrator.prepare()
        probabilities = self.calibrator.probabilities(raw)
        return replace(raw, rerank=self.reranker.scores(texts, probabilities, reference=reference))

    def reference_scores(self, texts: Sequence[str]) -> RawScores:
        """Raw scores of input-independent texts (content-free, neutral, domain), computed once and cached."""
        return self.calibrator.references.get(texts)

    def neutral_scores(self) -> RawScores:
        """Every candidate's raw score under the template with the text left empty (PMI's neutral context)."""
        return self.reference_scores([""])

    @property
    def reference_cache_dir(self) -> Path | None:
        """Directory of the on-disk reference-score cache (None: memory only). Settable."""
        return self.calibrator.references.cache_dir

    @reference_cache_dir.setter
    def reference_cache_dir(self, value: str | Path | None) -> None:
        self.calibrator.references.cache_dir = Path(value) if value is not None else None

    # ------------------------------------------------------------------ calibration

    def probabilities(self, raw: RawScores, *, calibrate: bool = True, method: str | None = None,
                      normalize: str | None = None, batch_prior: np.ndarray | None = None) -> np.ndarray:
        """Label probabilities (n_texts, n_labels) from raw scores: normalize, combine, softmax, calibrate.

        ``method`` and ``normalize`` override ``scoring.calibration`` and ``scoring.normalize`` for
        this call; ``calibrate=False`` means ``method="none"``. ``batch`` calibration divides by the
        mean over ``raw``'s rows (no change under 8 rows), or by ``batch_prior`` when given.
        Multi-label yes/no probabilities are returned uncalibrated.
        """
        probabilities = self.calibrator.probabilities(raw, calibrate=calibrate, method=method, normalize=normalize,
                                                      batch_prior=batch_prior)
        if not calibrate or method or normalize or batch_prior is not None:  # the rerank: configured setting only
            return probabilities
        return self.reranked(raw, probabilities)

    def reranked(self, raw: RawScores, probabilities: np.ndarray) -> np.ndarray:
        """``probabilities`` (the configured setting's, of ``raw``) after ``scoring.rerank`` (as they are
        without one, or when ``raw`` has no rerank scores)."""
        if self.reranker is None or raw.rerank is None:
            return probabilities
        return combine(probabilities, raw.rerank, self.reranker.weight)

    @property
    def calibration_state(self) -> CalibrationState:
        """What calibration learned: fitted parameters, domain inputs (the calibration file, once read)."""
        return self.calibrator.state

    def content_free_prior(self, *, normalize: str | None = None) -> np.ndarray:
        """Mean label probabilities on content-free inputs ("N/A", "", "[MASK]")."""
        return self.calibrator.content_free_prior(normalize=normalize)

    def domain_prior(self, *, normalize: str | None = None) -> np.ndarray:
        """Mean label probabilities on random in-domain word strings (see :meth:`fit_domain`)."""
        return self.calibrator.domain_prior(normalize=normalize)

    def fit_domain(self, texts: Sequence[Input], *, n_samples: int = 20, seed: int = 0) -> Classifier:
        """Use domain-context calibration (Fei et al. 2023) with in-domain, unlabelled ``texts``; returns self.

        The content-free inputs are ``n_samples`` strings of random words drawn from ``texts``
        (of their average length, fixed ``seed``); their scores are computed once and cached.
        """
        self.calibrator.fit_domain(texts, n_samples=n_samples, seed=seed)
        return self

    def fit(self, texts: Sequence[Input], labels: Sequence[Any]) -> Classifier:
        """Fit per-label biases and a temperature on labelled examples and use them; returns self.

        ``labels`` are label names or indices (in the config's label order). The fit minimizes
        the log-loss of ``softmax(log p / T + bias)`` on these examples (see
        :func:`lpclassify.calibration.fit_bias_temperature`) under the config's normalization.
        """
        texts = list(texts)
        if len(texts) != len(labels) or not texts:
            raise InputError(f"fit needs as many labels as texts (got {len(texts)} texts, {len(labels)} labels)")
        label_indices(labels, self.config.label_names)  # a bad label fails before the model runs
        return self.fit_scores(self.raw_scores(texts), labels)

    def fit_scores(self, raw: RawScores, labels: Sequence[Any]) -> Classifier:
        """:meth:`fit` on raw scores already computed (no model call)."""
        self.calibrator.fit_scores(raw, labels)
        return self

    @property
    def fitted_(self) -> FittedCalibration | None:
        """The fitted bias/temperature in use (after :meth:`fit` or from a calibration file), if any."""
        fitted = self.calibrator.state.fitted
        return fitted[0] if fitted else None

    def calibration_document(self) -> dict[str, Any]:
        """What :meth:`save_calibration` writes: the fitted parameters and/or the domain prior."""
        return self.calibrator.document()

    def save_calibration(self, path: str | Path) -> None:
        """Write a calibration file for ``scoring.calibration_file``."""
        self.calibrator.save(path)

    def load_calibration(self, path: str | Path) -> Classifier:
        """Use the fitted parameters and/or domain prior of a calibration file; returns self."""
        self.calibrator.load(path)
        return self

    # ------------------------------------------------------------------ classifying

    def classify(self, text: Input) -> Prediction:
        """Classify one text, or a record (a mapping) of the fields the prompt uses."""
        return self.classify_many([text])[0]

    def classify_many(self, texts: Iterable[Input]) -> list[Prediction]:
        """Classify many texts (list in, list out); see :meth:`iter_classify` for streams."""
        return list(self.iter_classify(texts))

    def iter_classify(self, texts: Iterable[Input], *, chunk_size: int | None = None) -> Iterator[Prediction]:
        """Classify a stream lazily, a chunk of texts per model call, in input order."""
        for chunk in chunks(texts, chunk_size or classify_chunk(self.config)):
            yield from self._classify_chunk(chunk)

    def chunk_size(self) -> int:
        """Texts per model call in :meth:`classify_many` (batch calibration averages over such a chunk)."""
        return classify_chunk(self.config)

    def _classify_chunk(self, texts: Sequence[Input]) -> list[Prediction]:
        results: list[Prediction | None] = [None] * len(texts)
        live: list[int] = []
        for i, text in enumerate(texts):
            if not isinstance(text, (str, Mapping)):
                raise InputError(f"expected a string (or a mapping of the prompt's fields), got {type(text).__name__}")
            if not is_blank(text):
                live.append(i)
            elif self.config.runtime.empty_text == "abstain":
                results[i] = Prediction(None, {name: float("nan") for name in self.config.label_names},
                                        abstained=True, reason="empty text")
            else:
                raise InputError("empty text: nothing to classify (set runtime.empty_text: abstain to "
                                 "abstain on empty texts instead)")
        if live:
            self.calibrator.prepare()
            live_texts = [texts[i] for i in live]
            if self._search_top_k():
                predictions = search_predictions(self, live_texts)
            else:
                predictions = self.decide(self.raw_scores(live_texts))
            for i, prediction in zip(live, predictions, strict=True):
                results[i] = prediction
        return [p for p in results if p is not None]

    def _search_top_k(self) -> bool:
        """Whether ``scoring.search: top_k`` applies; where it cannot, a one-line notice, once."""
        if self.config.scoring.search != "top_k":
            return False
        why = searchable(self.config)
        if why is not None and not self._search_notice:
            log.warning("scoring.search: top_k falls back to exhaustive scoring: %s", why)
            self._search_notice = True
        return why is None

    def decide(self, raw: RawScores, probabilities: np.ndarray | None = None) -> list[Prediction]:
        """Predictions from raw scores (and, optionally, probabilities computed elsewhere)."""
        probs = self.probabilities(raw) if probabilities is None else probabilities
        return decide(self.config, raw, probs)

    def explain(self, text: Input) -> Explanation:
        """Every number behind the decision for ``text``: prompts, token log-probs, label scores, probabilities."""
        from .explanation import explain

        return explain(self, text)

    # ------------------------------------------------------------------ scikit-learn style

    def predict(self, texts: Iterable[Input]) -> list[str | None]:
        """Label per text (None where it abstained), scikit-learn style."""
        return [p.label for p in self.classify_many(texts)]

    def predict_proba(self, texts: Iterable[Input]) -> np.ndarray:
        """Probabilities (n_texts, n_labels) in the order of :attr:`classes_`."""
        predictions = self.classify_many(texts)
        return np.array([[p.probabilities.get(name, np.nan) for name in self.classes_] for p in predictions]).reshape(
            len(predictions), len(self.classes_))

    def __repr__(self) -> str:
        return f"Classifier({self.config.name!r}, labels={list(self.config.label_names)})"


def classify_chunk(config: Config) -> int:
    """Texts per ``classify_many`` model call; batch calibration divides by each such chunk's mean,
    so it needs a chunk worth averaging (:func:`~lpclassify.calibration.batch_chunk_size`)."""
    batch_size = config.runtime.batch_size
    if calibration.get(config.scoring.calibration).uses_batch:
        return calibration.batch_chunk_size(batch_size)
    return calibration.classify_chunk_size(batch_size)
