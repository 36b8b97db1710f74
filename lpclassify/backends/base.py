"""The token-level protocol every backend implements.

A backend knows token ids, not templates or labels: it tokenizes, and for each text it
returns the log-probability of every token of every candidate continuation, given the
text's prompt tokens and the continuation's earlier tokens. Everything else (strings,
normalization, decisions) lives above it, so a fake backend can drive the maths in tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..tokenization import EncodedText

# One entry per text; in it, one float64 array per candidate: log p(token | everything before)
# for each of the candidate's ``tokens``. Only the last ``n_scored`` are ever used; a fast path
# may leave the leading ones (the candidate's own prompt, in multi-label mode) as NaN.
ScoreResult = list[list[np.ndarray]]


@runtime_checkable
class Backend(Protocol):
    @property
    def n_ctx(self) -> int:
        """The most tokens one text's prompt plus its longest candidate may take."""
        ...

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        """Token ids of ``text``; with ``add_bos`` a BOS token first when the model wants one."""
        ...

    def token_text(self, token: int) -> str:
        """How one token reads (for ``explain`` and ``validate``)."""
        ...

    def pin_prefix(self, tokens: Sequence[int]) -> None:
        """Tokens that start (almost) every prompt: a backend may precompute and reuse them."""
        ...

    def score(self, texts: Sequence[EncodedText]) -> ScoreResult:
        """Per-token log-probs of every candidate of every text (the fast path)."""
        ...

    def score_reference(self, texts: Sequence[EncodedText]) -> ScoreResult:
        """The same, computed the straightforward way: the oracle the fast path must match."""
        ...
