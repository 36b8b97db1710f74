"""Reference scores: raw scores of texts that do not depend on the input, computed once.

Content-free inputs, the neutral context and domain inputs are the same for every text a
classifier sees, so their scores are kept in memory and on disk (one JSON file per model file
and rendered prompt with its candidates), per text: a text's reference scores are computed
once whatever set it appears in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..scores import CompletionScore, RawScores
from ..slots import Slot, completion_chars
from . import store

Score = Callable[[list[str]], RawScores]


class ReferenceCache:
    """``get(texts)`` -> RawScores, from memory, the disk cache, or the model (in that order).

    ``model`` identifies the model file (None: memory only, e.g. a fake backend); ``setting``
    is everything else the scores depend on (rendered prompt, completions, mode, context size).
    Threads may share it: each missing text is scored once.
    """

    def __init__(self, score: Score, slots: Sequence[Slot], *, model: Mapping[str, object] | None,
                 setting: Mapping[str, object]) -> None:
        self._score = score
        self._slots = tuple(slots)
        self._model = dict(model) if model is not None else None
        self._setting = dict(setting)
        self._memory: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()
        self.cache_dir: Path | None = store.reference_cache_dir()
        self.disk_hits = 0  # reference texts read from the disk cache
        self.computed = 0  # reference texts scored by the model

    def file(self) -> Path | None:
        if self.cache_dir is None or self._model is None:
            return None
        return self.cache_dir / f"{store.reference_key(self._model, self._setting)[:40]}.json"

    def get(self, texts: Sequence[str]) -> RawScores:
        texts = list(texts)
        with self._lock:
            self._fill(texts)
        width = len(self._slots)
        logprobs = np.array([self._memory[t][0] for t in texts]).reshape(len(texts), width)
        n_tokens = np.array([self._memory[t][1] for t in texts], dtype=np.int64).reshape(len(texts), width)
        scores = [tuple(CompletionScore(slot.name, slot.completion, float(lp), int(nt), ())
                        for slot, lp, nt in zip(self._slots, row_lp, row_nt, strict=True))
                  for row_lp, row_nt in zip(logprobs, n_tokens, strict=True)]
        return RawScores(logprobs, n_tokens, np.array(completion_chars(self._slots)),
                         np.zeros(len(texts), dtype=bool), scores)

    def snapshot(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every reference text's scores held in memory, ``{text: (logprobs, n_tokens)}`` (copies).

        With :meth:`restore` it ships what one process scored to others (``lpclassify.ray``'s
        actors), which then never score a reference text themselves.
        """
        with self._lock:
            return {text: (lp.copy(), nt.copy()) for text, (lp, nt) in self._memory.items()}

    def restore(self, entries: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Take scores from :meth:`snapshot` into memory (they win over the disk cache and the model)."""
        with self._lock:
            for text, (logprobs, n_tokens) in entries.items():
                if len(logprobs) != len(self._slots):
                    raise ValueError(f"reference scores for {text!r} have {len(logprobs)} candidates, "
                                     f"expected {len(self._slots)}")
                self._memory[text] = (np.array(logprobs, dtype=np.float64), np.array(n_tokens, dtype=np.int64))

    def _fill(self, texts: list[str]) -> None:
        missing = [t for t in dict.fromkeys(texts) if t not in self._memory]
        path = self.file()
        if missing and path is not None:
            on_disk = store.read_reference_file(path)
            for text in missing:
                if text in on_disk and len(on_disk[text][0]) == len(self._slots):
                    self._memory[text] = (np.array(on_disk[text][0]), np.array(on_disk[text][1]))
                    self.disk_hits += 1
            missing = [t for t in missing if t not in self._memory]
        if not missing:
            return
        raw = self._score(missing)
        self.computed += len(missing)
        for text, logprobs, n_tokens in zip(missing, raw.logprobs, raw.n_tokens, strict=True):
            self._memory[text] = (logprobs.copy(), n_tokens.copy())
        if path is not None:
            entries = {t: (self._memory[t][0].tolist(), self._memory[t][1].tolist()) for t in missing}
            store.write_reference_file(path, entries, {"model": self._model, "pairs": self._setting.get("pairs")})
