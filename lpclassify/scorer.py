"""A config's prompts, tokenized and scored by a backend: texts -> :class:`~lpclassify.scores.RawScores`.

The scorer renders each text into its (prompt, completion) pairs, encodes them jointly
(shortening texts that do not fit, or cutting them into windows), asks the backend for
per-token log-probs and sums them per completion. It knows nothing of calibration or
decisions.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from .backends.base import Backend
from .config import Config
from .long_inputs import Fitter
from .prompts import describe_labels, render, static_prefix
from .scores import CompletionScore, RawScores, completion_score, mean_score
from .slots import completion_chars, make_slots
from .tokenization import EncodedText, encode_pairs


class Scorer:
    """Scores texts for one config on one backend. Threads may share it (model calls are serialized)."""

    def __init__(self, config: Config, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self.slots = make_slots(config)
        self._labels_text = describe_labels(config.labels)
        self._fitter = Fitter(lambda text: encode_pairs(backend.tokenize, self.prompts(text)), backend.n_ctx)
        # The part of every prompt before the text: the backend may decode it once and keep it.
        self.prefix = tuple(backend.tokenize(self._static_prefix(), True))
        self._lock = threading.Lock()

    def _static_prefix(self) -> str:
        if self.config.decision.mode == "single":
            return static_prefix(self.config.prompt, labels=self._labels_text)
        first = self.config.labels[0]
        return static_prefix(self.config.prompt, label=first.name, description=first.description or first.name)

    def prompts(self, text: str) -> list[tuple[str, str]]:
        """The (prompt, completion) pairs scored for ``text``, one per candidate slot."""
        if self.config.decision.mode == "single":
            prompt = render(self.config.prompt, text=text, labels=self._labels_text)
            return [(prompt, slot.completion) for slot in self.slots]
        labels = self.config.labels
        return [(render(self.config.prompt, text=text, label=labels[slot.label].name,
                        description=labels[slot.label].description or labels[slot.label].name), slot.completion)
                for slot in self.slots]

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
            if reference:
                token_logprobs = self.backend.score_reference(windows)
            else:
                token_logprobs = self.backend.score(windows, prefix=self.prefix)
        rows: list[tuple[CompletionScore, ...]] = []
        start = 0
        for count in n_chunks:
            per_window = [tuple(completion_score(slot.name, candidate, values) for slot, candidate, values
                                in zip(self.slots, windows[w].candidates, token_logprobs[w]))
                          for w in range(start, start + count)]
            start += count
            rows.append(per_window[0] if count == 1 else tuple(mean_score(s) for s in zip(*per_window)))
        width = len(self.slots)
        logprobs = np.array([[s.logprob for s in row] for row in rows], dtype=np.float64).reshape(len(rows), width)
        n_tokens = np.array([[s.n_tokens for s in row] for row in rows], dtype=np.int64).reshape(len(rows), width)
        return RawScores(logprobs, n_tokens, np.array(completion_chars(self.slots)), np.array(truncated, dtype=bool),
                         rows, np.array(n_chunks, dtype=np.int64))
