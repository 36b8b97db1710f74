"""The public classifier: a config plus a backend, with scikit-learn-style conveniences.

>>> from lpclassify import Classifier                                 # doctest: +SKIP
>>> clf = Classifier.from_config("configs/sentiment.yaml")             # doctest: +SKIP
>>> clf.classify("An absolute joy from start to finish.").label       # doctest: +SKIP
'positive'

It never reads argv, prints or exits: I/O lives in ``cli.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import calibration
from .backends.base import Backend
from .config import Config, load_config
from .decision import Prediction, decide_multi, decide_single
from .errors import ConfigError, InputError
from .long_inputs import Fitter
from .prompts import describe_labels, render, static_prefix
from .scoring import CompletionScore, completion_score
from .tokenization import EncodedText, encode_pairs

log = logging.getLogger("lpclassify")


@dataclass(frozen=True)
class _Slot:
    """Which label a candidate completion speaks for (and, in multi-label mode, yes or no)."""

    label: int
    completion: str
    yes: bool = True


@dataclass
class RawScores:
    """Raw summed log-probs of every candidate for a batch of texts: the cacheable model output.

    Every normalization and calibration method works from these arrays alone, so comparing
    methods costs one model pass.
    """

    logprobs: np.ndarray  # (n_texts, n_candidates)
    n_tokens: np.ndarray  # (n_texts, n_candidates)
    n_chars: np.ndarray  # (n_candidates,)
    truncated: np.ndarray  # (n_texts,) bool
    scores: list[tuple[CompletionScore, ...]]
    n_chunks: np.ndarray | None = None  # (n_texts,) windows each text was scored in; None: all 1

    def __post_init__(self) -> None:
        if self.n_chunks is None:
            self.n_chunks = np.ones(len(self.logprobs), dtype=np.int64)


_DEFAULT = object()


@dataclass
class _CalibrationState:
    """What calibration keeps per classifier: reference scores, fitted parameters, domain inputs."""

    references: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    fitted: tuple[calibration.FittedCalibration, str, str] | None = None  # (fit, normalize, aggregate)
    domain_inputs: tuple[str, ...] | None = None
    domain_stored_prior: tuple[np.ndarray, tuple[Any, Any, Any]] | None = None  # from a calibration file
    cache_dir: object = _DEFAULT
    disk_hits: int = 0  # reference texts read from the disk cache
    computed: int = 0  # reference texts scored by the model


class Classifier:
    """Zero-shot classifier: render a prompt per text, score each label's completions, decide."""

    def __init__(self, config: Config, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self.classes_ = np.array(config.label_names)
        self._slots = self._make_slots()
        # Threads may share a classifier: the lock serializes model calls and the lazily built
        # calibration state (re-entrant: reference scores are computed through raw_scores).
        self._lock = threading.RLock()
        self._labels_text = describe_labels(config.labels)
        self._fitter = Fitter(lambda text: encode_pairs(backend.tokenize, self.prompts(text)), backend.n_ctx)
        backend.pin_prefix(backend.tokenize(self._static_prefix(), True))

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_config(cls, path_or_mapping: str | Path | Mapping[str, Any] | Config, model: str | None = None, *,
                    backend: Backend | None = None, download: bool = False, verbose: bool = False,
                    **runtime: Any) -> Classifier:
        """Load a config (path, mapping or :class:`Config`) and its model.

        ``model`` overrides the config's model (a registry name or a ``.gguf`` path);
        ``runtime`` overrides ``runtime.*`` settings such as ``batch_size`` or ``threads``.
        """
        config = path_or_mapping if isinstance(path_or_mapping, Config) else load_config(path_or_mapping)
        if runtime:
            config = replace(config, runtime=replace(config.runtime, **runtime))
        if backend is None:
            from .backends.llama_cpp import LlamaCppBackend
            from .models import resolve_model

            path = resolve_model(model or config.model, download=download)
            rt = config.runtime
            backend = LlamaCppBackend(path, n_ctx=rt.n_ctx, batch_size=rt.batch_size, threads=rt.threads,
                                      n_gpu_layers=rt.n_gpu_layers, verbose=verbose)
        return cls(config, backend)

    def _make_slots(self) -> tuple[_Slot, ...]:
        if self.config.decision.mode == "single":
            return tuple(_Slot(i, completion) for i, label in enumerate(self.config.labels)
                         for completion in label.completions)
        multi = self.config.decision.multi
        return tuple(_Slot(i, completion, yes) for i in range(len(self.config.labels))
                     for yes, completions in ((True, multi.yes), (False, multi.no)) for completion in completions)

    def _static_prefix(self) -> str:
        if self.config.decision.mode == "single":
            return static_prefix(self.config.prompt, labels=self._labels_text)
        first = self.config.labels[0]
        return static_prefix(self.config.prompt, label=first.name,
                             description=first.description or first.name)

    # ------------------------------------------------------------------ prompts

    def prompts(self, text: str) -> list[tuple[str, str]]:
        """The (prompt, completion) pairs scored for ``text``, one per candidate slot."""
        if self.config.decision.mode == "single":
            prompt = render(self.config.prompt, text=text, labels=self._labels_text)
            return [(prompt, slot.completion) for slot in self._slots]
        labels = self.config.labels
        template = self.config.prompt
        return [(render(template, text=text, label=labels[slot.label].name,
                        description=labels[slot.label].description or labels[slot.label].name), slot.completion)
                for slot in self._slots]

    def encode(self, text: str) -> tuple[EncodedText, bool]:
        """Tokenize a text's candidates, shortened if they do not fit (the first window in chunk mode)."""
        windows, truncated = self.encode_windows(text)
        return windows[0], truncated

    def encode_windows(self, text: str) -> tuple[list[EncodedText], bool]:
        """A text's candidates as one encoding that fits the context, or several (see runtime.long_inputs).

        Returns the encodings and whether the text was truncated.
        """
        n_ctx = self.backend.n_ctx
        # A text of many more tokens than n_ctx: skip encoding it whole (once per candidate).
        if len(text) <= n_ctx or len(self.backend.tokenize(text, False)) <= n_ctx:
            encoded = self._fitter.encode(text)
            if self._fitter.fits(encoded):
                return [encoded], False
        if self.config.runtime.long_inputs == "chunk":
            return [encoded for encoded, _ in self._fitter.windows(text)], False
        return [self._fitter.truncate(text, self.config.runtime.truncate_side)[0]], True

    # ------------------------------------------------------------------ scoring

    def raw_scores(self, texts: Sequence[str], *, reference: bool = False) -> RawScores:
        """Summed log-probs of every candidate for every text: one model pass.

        A text scored in several windows (``long_inputs: chunk``) gets, per candidate, the mean
        of its windows' log-probs; calibration and the decision then work on it as on any text.
        """
        windows: list[EncodedText] = []
        n_chunks: list[int] = []
        truncated: list[bool] = []
        for text in texts:
            encoded, cut = self.encode_windows(text)
            windows.extend(encoded)
            n_chunks.append(len(encoded))
            truncated.append(cut)
        with self._lock:
            score = self.backend.score_reference if reference else self.backend.score
            token_logprobs = score(windows)
        labels = self.config.labels
        n = len(texts)
        logprobs = np.empty((n, len(self._slots)))
        n_tokens = np.empty((n, len(self._slots)), dtype=np.int64)
        all_scores: list[tuple[CompletionScore, ...]] = []
        start = 0
        for i, count in enumerate(n_chunks):
            rows = [tuple(completion_score(labels[slot.label].name, candidate, values)
                          for slot, candidate, values in zip(self._slots, windows[w].candidates, token_logprobs[w]))
                    for w in range(start, start + count)]
            start += count
            row = rows[0] if count == 1 else tuple(_mean_score(scores) for scores in zip(*rows))
            logprobs[i] = [s.logprob for s in row]
            n_tokens[i] = [s.n_tokens for s in row]
            all_scores.append(row)
        n_chars = np.array([len(slot.completion.strip()) or 1 for slot in self._slots])
        return RawScores(logprobs, n_tokens, n_chars, np.array(truncated, dtype=bool), all_scores,
                         np.array(n_chunks, dtype=np.int64))

    def probabilities(self, raw: RawScores, *, calibrate: bool = True, method: str | None = None,
                      normalize: str | None = None, batch_prior: np.ndarray | None = None) -> np.ndarray:
        """Label probabilities (n_texts, n_labels) from raw scores: normalize, combine, softmax, calibrate.

        ``method`` and ``normalize`` override ``scoring.calibration`` and ``scoring.normalize`` for
        this call (evaluation compares every method on one set of raw scores); ``calibrate=False``
        means ``method="none"``. ``batch`` calibration divides by the mean over ``raw``'s rows (no
        change under 8 rows), or by ``batch_prior`` when given. Calibration applies in single-label
        mode; multi-label yes/no probabilities are returned uncalibrated.
        """
        scoring = self.config.scoring
        method = (method or scoring.calibration) if calibrate else "none"
        norm = normalize or scoring.normalize
        logprobs = raw.logprobs
        if method == "pmi" and self.config.decision.mode == "single":
            logprobs = calibration.pmi_scores(logprobs, self.neutral_scores().logprobs[0])
        normalized = calibration.normalize(logprobs, raw.n_tokens, raw.n_chars, norm)
        n_labels = len(self.config.labels)
        if self.config.decision.mode == "multi":
            yes_owner = [slot.label if slot.yes else -1 for slot in self._slots]
            no_owner = [slot.label if not slot.yes else -1 for slot in self._slots]
            yes = calibration.aggregate(normalized, yes_owner, n_labels, scoring.aggregate)
            no = calibration.aggregate(normalized, no_owner, n_labels, scoring.aggregate)
            return calibration.softmax(np.stack([yes, no], axis=-1))[..., 0]
        owners = [slot.label for slot in self._slots]
        scores = calibration.aggregate(normalized, owners, n_labels, scoring.aggregate)
        if method == "fitted":
            return self._fitted(norm).apply(calibration.log_probabilities(scores))
        probs = calibration.softmax(scores)
        if method == "contextual":
            probs = calibration.apply_prior(probs, self.content_free_prior(normalize=norm))
        elif method == "domain":
            probs = calibration.apply_prior(probs, self.domain_prior(normalize=norm))
        elif method == "batch":
            if batch_prior is not None:
                probs = calibration.apply_prior(probs, batch_prior)
            else:
                probs, applied = calibration.batch_calibrate(probs)
                if not applied and len(probs):
                    log.debug("batch calibration skipped: %d texts < %d", len(probs), calibration.MIN_BATCH)
        elif method not in ("none", "pmi"):
            raise ValueError(f"unknown calibration {method!r}")
        return probs

    def content_free_prior(self, *, normalize: str | None = None) -> np.ndarray:
        """Mean label probabilities on content-free inputs ("N/A", "", "[MASK]"); their scores are cached."""
        raw = self.reference_scores(self.config.scoring.content_free)
        return calibration.mean_prior(self.probabilities(raw, calibrate=False, normalize=normalize))

    # ------------------------------------------------------------------ calibration

    def neutral_scores(self) -> RawScores:
        """Every candidate's raw score under the template with the text left empty (PMI's neutral context)."""
        return self.reference_scores([""])

    def domain_prior(self, *, normalize: str | None = None) -> np.ndarray:
        """Mean label probabilities on random in-domain word strings (see :meth:`fit_domain`)."""
        state = self._calibration_state()
        norm = normalize or self.config.scoring.normalize
        stored = state.domain_stored_prior
        if stored is not None and stored[1] == (norm, self.config.scoring.aggregate, self._model_name()):
            return stored[0]
        if state.domain_inputs is None:
            raise ConfigError("domain calibration needs in-domain texts: call Classifier.fit_domain(texts) or set "
                              "scoring.calibration_file to a file written by `lpclassify calibrate`",
                              source=self.config.source, key="scoring.calibration")
        raw = self.reference_scores(state.domain_inputs)
        return calibration.mean_prior(self.probabilities(raw, calibrate=False, normalize=norm))

    def fit_domain(self, texts: Sequence[str], *, n_samples: int = 20, seed: int = 0) -> Classifier:
        """Use domain-context calibration (Fei et al. 2023) with in-domain, unlabelled ``texts``; returns self.

        The content-free inputs are ``n_samples`` strings of random words drawn from ``texts``
        (of their average length, fixed ``seed``); their scores are computed once and cached.
        """
        try:
            inputs = calibration.domain_inputs(list(texts), n_samples=n_samples, seed=seed)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        state = self._calibration_state()
        state.domain_inputs = tuple(inputs)
        state.domain_stored_prior = None
        self._set_calibration("domain")
        return self

    def fit(self, texts: Sequence[str], labels: Sequence[Any]) -> Classifier:
        """Fit per-label biases and a temperature on labelled examples and use them; returns self.

        ``labels`` are label names or indices (in the config's label order). The fit minimizes
        the log-loss of ``softmax(log p / T + bias)`` on these examples (see
        :func:`lpclassify.calibration.fit_bias_temperature`) under the config's normalization.
        """
        texts = list(texts)
        if len(texts) != len(labels) or not texts:
            raise InputError(f"fit needs as many labels as texts (got {len(texts)} texts, {len(labels)} labels)")
        try:
            y = calibration.label_indices(labels, self.config.label_names)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        return self.fit_scores(self.raw_scores(texts), y)

    def fit_scores(self, raw: RawScores, labels: Sequence[Any]) -> Classifier:
        """:meth:`fit` on raw scores already computed (no model call)."""
        norm = self.config.scoring.normalize
        if self.config.decision.mode != "single":
            raise ConfigError("fitted calibration is for single-label configs (decision.mode: single)",
                              source=self.config.source, key="decision.mode")
        if len(labels) != len(raw.logprobs) or not len(labels):
            raise InputError(f"fit needs one label per text (got {len(raw.logprobs)} texts, {len(labels)} labels)")
        try:
            y = calibration.label_indices(labels, self.config.label_names)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        log_probs = np.log(np.clip(self.probabilities(raw, calibrate=False), 1e-300, None))
        fit = calibration.fit_bias_temperature(log_probs, y)
        self._calibration_state().fitted = (fit, norm, self.config.scoring.aggregate)
        self._set_calibration("fitted")
        return self

    @property
    def fitted_(self) -> calibration.FittedCalibration | None:
        """The fitted bias/temperature in use (after :meth:`fit` or from a calibration file), if any."""
        fitted = self._calibration_state().fitted
        return fitted[0] if fitted else None

    def calibration_document(self) -> dict[str, Any]:
        """What :meth:`save_calibration` writes: the fitted parameters and/or the domain prior."""
        state = self._calibration_state()
        scoring = self.config.scoring
        document: dict[str, Any] = {"labels": list(self.config.label_names), "model": self._model_name(),
                                    "normalize": scoring.normalize, "aggregate": scoring.aggregate}
        if state.fitted is not None:
            fit, norm, agg = state.fitted
            document["fitted"] = {**fit.as_dict(), "normalize": norm, "aggregate": agg}
        if state.domain_inputs is not None:
            document["domain"] = {"prior": self.domain_prior().tolist(), "inputs": list(state.domain_inputs),
                                  "normalize": scoring.normalize, "aggregate": scoring.aggregate}
        return document

    def save_calibration(self, path: str | Path) -> None:
        """Write a calibration file for ``scoring.calibration_file``."""
        document = self.calibration_document()
        if "fitted" not in document and "domain" not in document:
            raise InputError("nothing to save: call fit() or fit_domain() first")
        calibration.write_calibration_file(path, document)

    def load_calibration(self, path: str | Path) -> Classifier:
        """Use the fitted parameters and/or domain prior of a calibration file; returns self."""
        source, key = self.config.source, "scoring.calibration_file"
        try:
            data = calibration.read_calibration_file(path)
        except OSError as exc:
            raise ConfigError(f"cannot read calibration file {path}: {exc.strerror or exc}", source=source,
                              key=key) from None
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}", source=source, key=key) from None
        if list(data["labels"]) != list(self.config.label_names):  # type: ignore[call-overload]
            raise ConfigError(f"{path} was made for labels {data['labels']}, not {list(self.config.label_names)}; "
                              "rerun `lpclassify calibrate`", source=source, key=key)
        if data.get("model") not in (None, self._model_name()):
            log.warning("calibration file %s was made with model %s, not %s", path, data.get("model"),
                        self._model_name())
        state = self._calibration_state()
        try:
            if isinstance(data.get("fitted"), dict):
                fitted = data["fitted"]
                fit = calibration.FittedCalibration.from_dict(fitted)  # type: ignore[arg-type]
                if len(fit.bias) != len(self.config.labels):
                    raise ValueError("'fitted.bias' needs one number per label")
                state.fitted = (fit, str(fitted.get("normalize", data.get("normalize", "sum"))),  # type: ignore[union-attr]
                                str(fitted.get("aggregate", data.get("aggregate", "logsumexp"))))  # type: ignore[union-attr]
            if isinstance(data.get("domain"), dict):
                domain = data["domain"]
                inputs = domain.get("inputs")  # type: ignore[union-attr]
                state.domain_inputs = tuple(str(t) for t in inputs) if isinstance(inputs, list) and inputs else None
                prior = domain.get("prior")  # type: ignore[union-attr]
                if isinstance(prior, list) and len(prior) == len(self.config.labels):
                    state.domain_stored_prior = (np.array(prior, dtype=np.float64),
                                                 (domain.get("normalize"), domain.get("aggregate"),  # type: ignore[union-attr]
                                                  data.get("model")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: malformed calibration file ({exc})", source=source, key=key) from None
        return self

    def reference_scores(self, texts: Sequence[str]) -> RawScores:
        """Raw scores of input-independent texts (content-free, neutral, domain), computed once.

        Kept in memory and on disk (JSON under :attr:`reference_cache_dir`, one file per model
        file (path, size, mtime) and rendered prompt with its candidates), per text, so that
        a text's reference scores are computed once whatever set it appears in.
        """
        with self._lock:  # threads sharing the classifier compute and store each reference once
            return self._reference_scores(list(texts))

    def _reference_scores(self, texts: list[str]) -> RawScores:
        state = self._calibration_state()
        missing = [t for t in dict.fromkeys(texts) if t not in state.references]
        path = self._reference_file()
        if missing and path is not None:
            on_disk = calibration.read_reference_file(path)
            for text in missing:
                if text in on_disk and len(on_disk[text][0]) == len(self._slots):
                    state.references[text] = (np.array(on_disk[text][0]), np.array(on_disk[text][1]))
                    state.disk_hits += 1
            missing = [t for t in missing if t not in state.references]
        if missing:
            raw = self.raw_scores(missing)
            state.computed += len(missing)
            for text, logprobs, n_tokens in zip(missing, raw.logprobs, raw.n_tokens, strict=True):
                state.references[text] = (logprobs.copy(), n_tokens.copy())
            if path is not None:
                identity = calibration.model_identity(getattr(self.backend, "model_path", None))
                calibration.write_reference_file(
                    path, {t: (state.references[t][0].tolist(), state.references[t][1].tolist()) for t in missing},
                    {"model": identity, "pairs": self.prompts("{text}")})
        logprobs = np.array([state.references[t][0] for t in texts]).reshape(len(texts), len(self._slots))
        n_tokens = np.array([state.references[t][1] for t in texts], dtype=np.int64).reshape(len(texts),
                                                                                          len(self._slots))
        n_chars = np.array([len(slot.completion.strip()) or 1 for slot in self._slots])
        names = self.config.label_names
        scores = [tuple(CompletionScore(names[slot.label], slot.completion, float(lp), int(nt), ())
                        for slot, lp, nt in zip(self._slots, row_lp, row_nt, strict=True))
                  for row_lp, row_nt in zip(logprobs, n_tokens, strict=True)]
        return RawScores(logprobs, n_tokens, n_chars, np.zeros(len(texts), dtype=bool), scores)

    @property
    def reference_cache_dir(self) -> Path | None:
        """Directory of the on-disk reference-score cache (None: memory only). Settable."""
        state = self._calibration_state()
        if state.cache_dir is _DEFAULT:
            return calibration.reference_cache_dir()
        return state.cache_dir  # type: ignore[return-value]

    @reference_cache_dir.setter
    def reference_cache_dir(self, value: str | Path | None) -> None:
        self._calibration_state().cache_dir = Path(value) if value is not None else None

    def _reference_file(self) -> Path | None:
        directory = self.reference_cache_dir
        identity = calibration.model_identity(getattr(self.backend, "model_path", None))
        if directory is None or identity is None:
            return None
        key = calibration.reference_key(identity, {"pairs": self.prompts("{text}"), "mode": self.config.decision.mode,
                                                   "n_ctx": self.backend.n_ctx})
        return directory / f"{key[:40]}.json"

    def _model_name(self) -> str | None:
        path = getattr(self.backend, "model_path", None)
        return Path(path).name if path is not None else None

    def _fitted(self, normalize: str) -> calibration.FittedCalibration:
        fitted = self._calibration_state().fitted
        if fitted is None:
            raise ConfigError("fitted calibration needs parameters: call Classifier.fit(texts, labels) or set "
                              "scoring.calibration_file to a file written by `lpclassify calibrate`",
                              source=self.config.source, key="scoring.calibration")
        fit, norm, agg = fitted
        if (norm, agg) != (normalize, self.config.scoring.aggregate):
            raise ConfigError(f"the fitted calibration was fitted with normalize={norm}, aggregate={agg}; this "
                              f"classifier uses normalize={normalize}, aggregate={self.config.scoring.aggregate}: "
                              "refit it", source=self.config.source, key="scoring.calibration")
        return fit

    def _set_calibration(self, method: str) -> None:
        if self.config.scoring.calibration != method:
            self.config = replace(self.config, scoring=replace(self.config.scoring, calibration=method))

    def _calibration_state(self) -> _CalibrationState:
        with self._lock:  # built once even when threads ask at the same time
            return self._build_calibration_state()

    def _build_calibration_state(self) -> _CalibrationState:
        state = self.__dict__.get("_calibration")
        if state is None:
            state = self.__dict__["_calibration"] = _CalibrationState()
            file = self.config.scoring.calibration_file
            if file:
                base = Path(self.config.source).parent if self.config.source != "<mapping>" else Path.cwd()
                try:
                    self.load_calibration(base / file)
                except BaseException:
                    del self.__dict__["_calibration"]  # report the problem again on the next call
                    raise
        return state

    # ------------------------------------------------------------------ public API

    def classify(self, text: str) -> Prediction:
        """Classify one text."""
        return self.classify_many([text])[0]

    def classify_many(self, texts: Iterable[str]) -> list[Prediction]:
        """Classify many texts (list in, list out); see :meth:`iter_classify` for streams."""
        return list(self.iter_classify(texts))

    def iter_classify(self, texts: Iterable[str], *, chunk_size: int | None = None) -> Iterator[Prediction]:
        """Classify a stream lazily, a chunk of texts per model call, in input order."""
        size = chunk_size or max(1, self.config.runtime.batch_size) * 4
        if chunk_size is None and self.config.scoring.calibration == "batch":
            # batch calibration divides by the chunk's mean: it needs a chunk worth averaging
            size = max(size, calibration.BATCH_CHUNK)
        chunk: list[str] = []
        for text in texts:
            chunk.append(text)
            if len(chunk) >= size:
                yield from self._classify_chunk(chunk)
                chunk = []
        if chunk:
            yield from self._classify_chunk(chunk)

    def _classify_chunk(self, texts: Sequence[str]) -> list[Prediction]:
        results: list[Prediction | None] = [None] * len(texts)
        live: list[int] = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"expected a string, got {type(text).__name__}")
            if text.strip():
                live.append(i)
            elif self.config.runtime.empty_text == "abstain":
                results[i] = Prediction(None, {name: float("nan") for name in self.config.label_names},
                                        abstained=True, reason="empty text")
            else:
                raise InputError("empty text: nothing to classify (set runtime.empty_text: abstain to "
                                 "abstain on empty texts instead)")
        if live:
            raw = self.raw_scores([texts[i] for i in live])
            for i, prediction in zip(live, self.decide(raw)):
                results[i] = prediction
        return [p for p in results if p is not None]

    def decide(self, raw: RawScores, probabilities: np.ndarray | None = None) -> list[Prediction]:
        """Predictions from raw scores (and, optionally, probabilities computed elsewhere)."""
        probs = self.probabilities(raw) if probabilities is None else probabilities
        names = self.config.label_names
        decision = self.config.decision
        out = []
        n_chunks = raw.n_chunks if raw.n_chunks is not None else np.ones(len(probs), dtype=np.int64)
        for i in range(len(probs)):
            if decision.mode == "multi":
                thresholds = [label.threshold if label.threshold is not None else decision.threshold
                              for label in self.config.labels]
                prediction = decide_multi(names, probs[i], thresholds, scores=raw.scores[i],
                                          truncated=bool(raw.truncated[i]))
            else:
                prediction = decide_single(names, probs[i], threshold=decision.threshold, top_k=decision.top_k,
                                           scores=raw.scores[i], truncated=bool(raw.truncated[i]))
            out.append(replace(prediction, n_chunks=int(n_chunks[i])) if n_chunks[i] > 1 else prediction)
        return out

    def predict(self, texts: Iterable[str]) -> list[str | None]:
        """Label per text (None where it abstained), scikit-learn style."""
        return [p.label for p in self.classify_many(texts)]

    def predict_proba(self, texts: Iterable[str]) -> np.ndarray:
        """Probabilities (n_texts, n_labels) in the order of :attr:`classes_`."""
        predictions = self.classify_many(texts)
        return np.array([[p.probabilities[name] for name in self.classes_] for p in predictions]).reshape(
            len(predictions), len(self.classes_))

    def __repr__(self) -> str:
        return f"Classifier({self.config.name!r}, labels={list(self.config.label_names)})"


def _mean_score(scores: Sequence[CompletionScore]) -> CompletionScore:
    """One completion's scores in several windows of a text -> their mean (per token where they align)."""
    first = scores[0]
    per_token = first.token_logprobs
    if all(len(s.token_logprobs) == len(per_token) for s in scores):
        per_token = tuple(float(v) for v in np.mean([s.token_logprobs for s in scores], axis=0))
    return replace(first, logprob=float(np.mean([s.logprob for s in scores])),
                   n_tokens=round(float(np.mean([s.n_tokens for s in scores]))), token_logprobs=per_token)
