"""The token-level protocol every backend implements.

A backend knows token ids, not templates or labels: it tokenizes, and for each text it
returns the log-probability of every token of every candidate continuation, given the
text's prompt tokens and the continuation's earlier tokens. Everything else (strings,
normalization, decisions) lives above it, so a fake backend can drive the maths in tests.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..tokenization import EncodedText

# One entry per text; in it, one float64 array per candidate: log p(token | everything before)
# for each of the candidate's ``tokens``. Only the last ``n_scored`` are ever used; a fast path
# may leave the leading ones (the candidate's own prompt, in multi-label mode) as NaN.
ScoreResult = list[list[np.ndarray]]


@dataclass(frozen=True)
class ModelIdentity:
    """Which model a backend scores with: what caches, calibration files and resumed runs key on.

    ``path`` is None for a backend without a model file (a test fake): nothing is cached on disk then.
    """

    path: str | None = None
    size: int | None = None
    mtime_ns: int | None = None

    @classmethod
    def of_file(cls, path: str | os.PathLike[str] | None) -> ModelIdentity:
        if path is None:
            return cls()
        resolved = Path(path).resolve()
        try:
            stat = resolved.stat()
        except OSError:
            return cls(str(resolved))
        return cls(str(resolved), stat.st_size, stat.st_mtime_ns)

    @property
    def name(self) -> str | None:
        """The model file's name (what a calibration file records)."""
        return Path(self.path).name if self.path is not None else None

    def cache_key(self) -> dict[str, object] | None:
        """The identity as JSON for cache keys; None when there is no file to key on."""
        if self.path is None or self.size is None:
            return None
        return {"path": self.path, "name": self.name, "size": self.size, "mtime_ns": self.mtime_ns}


@dataclass(frozen=True)
class ChatTemplate:
    """A model's chat template (Jinja text from its GGUF metadata) and the token strings it may use."""

    source: str
    bos_token: str
    eos_token: str
    model: str  # the model's name, for messages


@runtime_checkable
class Backend(Protocol):
    @property
    def n_ctx(self) -> int:
        """The most tokens one text's prompt plus its longest candidate may take."""
        ...

    def identity(self) -> ModelIdentity:
        """The model this backend scores with."""
        ...

    def describe(self) -> dict[str, object]:
        """What the model is, as JSON-ready facts (``explain``, ``validate`` show them)."""
        ...

    def close(self) -> None:
        """Free the model's memory now (a closed backend is not used again)."""
        ...

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        """Token ids of ``text``; with ``add_bos`` a BOS token first when the model wants one."""
        ...

    def token_text(self, token: int) -> str:
        """How one token reads (for ``explain`` and ``validate``)."""
        ...

    def special_tokens(self, text: str) -> dict[str, int]:
        """The special (control) tokens in ``text`` when it is read as template text, by their text.

        :meth:`tokenize` never turns text into them: callers that render templates split the
        template's own text at these, so special tokens can only ever come from a template.
        """
        ...

    def chat_template(self) -> ChatTemplate | None:
        """The model's own chat template, if its file has one."""
        ...

    def score(self, texts: Sequence[EncodedText], *, prefix: Sequence[int] = ()) -> ScoreResult:
        """Per-token log-probs of every candidate of every text (the fast path).

        ``prefix``: tokens that start (almost) every prompt of this caller; a backend may decode
        them once and reuse them. It is a hint, never state: two callers with different
        prefixes on one backend each get their own results.
        """
        ...

    def score_reference(self, texts: Sequence[EncodedText]) -> ScoreResult:
        """The same, computed the straightforward way: the oracle the fast path must match."""
        ...
