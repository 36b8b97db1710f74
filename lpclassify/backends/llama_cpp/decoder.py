"""One decode call: a planned batch into llama.cpp, log-probs out of its output rows.

The batch is written exactly as planned (:class:`~.kv_cells.Placement`: rows in cell order,
padding included) and decoded as one micro-batch; the counters every benchmark reads are kept
here, where the tokens are counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .bindings import LogCapture
from .kv_cells import Placement


@dataclass
class EngineStats:
    """What the backend has done since it was created (for benchmarks and ``explain``)."""

    decode_calls: int = 0
    tokens_decoded: int = 0
    padding_tokens: int = 0
    logit_rows: int = 0
    texts: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class Decoder:
    """Owns the llama_batch of one context; decodes placements and reads their logit rows."""

    def __init__(self, lib: Any, log: LogCapture, ctx: Any, *, n_batch: int, n_seq_max: int, n_vocab: int,
                 stats: EngineStats) -> None:
        self._lib = lib
        self._log = log
        self._ctx = ctx
        self.n_batch = n_batch
        self.n_vocab = n_vocab
        self.stats = stats
        self._batch = lib.llama_batch_init(n_batch, 0, n_seq_max)

    def close(self) -> None:
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None

    def decode(self, placement: Placement) -> None:
        """Decode one planned batch as one micro-batch (``n_ubatch == n_batch``)."""
        layout = placement.layout
        if len(layout) > self.n_batch:  # llama.cpp would abort the process
            raise ValueError(f"a batch of {len(layout)} tokens exceeds n_batch={self.n_batch}; "
                             "raise runtime.n_ctx or use fewer, shorter completions")
        batch = self._batch
        for i, row in enumerate(layout):
            batch.token[i] = row.token
            batch.pos[i] = row.pos
            batch.n_seq_id[i] = len(row.seqs)
            for j, seq in enumerate(row.seqs):
                batch.seq_id[i][j] = seq
            batch.logits[i] = row.logits
        batch.n_tokens = len(layout)
        result = self._lib.llama_decode(self._ctx, batch)
        if result != 0:
            raise RuntimeError(f"llama_decode failed with code {result} on a batch of {len(layout)} tokens: "
                               + self._log.reason())
        self.stats.decode_calls += 1
        self.stats.tokens_decoded += len(layout) - placement.n_padding
        self.stats.padding_tokens += placement.n_padding
        self.stats.logit_rows += sum(row.logits for row in layout)

    def log_softmax_row(self, batch_index: int) -> tuple[np.ndarray, float]:
        """The float32 logits of one output row and their float64 log-normalizer."""
        pointer = self._lib.llama_get_logits_ith(self._ctx, batch_index)
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
        wide = logits.astype(np.float64)
        peak = wide.max()
        return logits, float(peak + np.log(np.exp(wide - peak).sum()))

    def log_probs(self, batch_index: int, tokens: set[int]) -> dict[int, float]:
        """log p(token) for each of ``tokens`` at one output row, normalized in float64."""
        logits, log_norm = self.log_softmax_row(batch_index)
        return {token: float(logits[token]) - log_norm for token in tokens}
