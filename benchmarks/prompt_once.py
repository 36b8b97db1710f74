"""The prompt-once baseline: what a careful user writes with llama-cpp-python's low-level API.

Per text: decode the prompt once on sequence 0 (logits at its last row: every completion's
first token), then for each completion of two tokens or more copy sequence 0 onto sequence 1,
decode the completion's tokens but the last on it (logits at each), read them, and drop
sequence 1. One decode per multi-token completion, nothing padded, no trie: the loop a user
who knows about KV-cache reuse writes, and what the engine is compared with.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lpclassify.backends.llama_cpp.bindings import create_context, default_threads, load_llama_cpp, load_model
from lpclassify.tokenization import EncodedText


class PromptOnce:
    def __init__(self, model_path: str | Path, n_ctx: int = 1024, threads: int | None = None) -> None:
        self.lib, log = load_llama_cpp()
        self.model = load_model(self.lib, log, Path(model_path), 0)
        self.n_vocab = self.lib.llama_vocab_n_tokens(self.lib.llama_model_get_vocab(self.model))
        self.n_batch = n_ctx
        self.ctx = create_context(self.lib, log, self.model, n_cells=n_ctx, n_batch=n_ctx, n_seq_max=2,
                                  threads=threads or default_threads(), max_outputs=16)
        self.memory = self.lib.llama_get_memory(self.ctx)
        self.batch = self.lib.llama_batch_init(n_ctx, 0, 2)
        self.decodes = 0

    def close(self) -> None:
        self.lib.llama_batch_free(self.batch)
        self.lib.llama_free(self.ctx)
        self.lib.llama_model_free(self.model)

    def _decode(self, tokens: Sequence[int], first_pos: int, seq: int, logits_from: int) -> None:
        batch = self.batch
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = first_pos + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = i >= logits_from
        batch.n_tokens = len(tokens)
        if self.lib.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        self.decodes += 1

    def _log_probs(self, row: int) -> np.ndarray:
        logits = np.ctypeslib.as_array(self.lib.llama_get_logits_ith(self.ctx, row), shape=(self.n_vocab,))
        wide = logits.astype(np.float64)
        peak = wide.max()
        return wide - (peak + np.log(np.exp(wide - peak).sum()))

    def score(self, text: EncodedText) -> list[float]:
        """Summed log-prob of every candidate (every token scored: single-label prompts)."""
        lib = self.lib
        lib.llama_memory_clear(self.memory, True)
        prompt = text.prompt
        self._decode(prompt, 0, 0, len(prompt) - 1)
        first = self._log_probs(-1)
        out = []
        for candidate in text.candidates:
            tokens = candidate.tokens
            total = float(first[tokens[0]])
            if len(tokens) > 1:
                lib.llama_memory_seq_cp(self.memory, 0, 1, -1, -1)
                self._decode(tokens[:-1], len(prompt), 1, 0)
                for k in range(1, len(tokens)):
                    total += float(self._log_probs(k - 1)[tokens[k]])
                lib.llama_memory_seq_rm(self.memory, 1, -1, -1)
            out.append(total)
        return out


def timed(model_path: str | Path, texts: Sequence[EncodedText]) -> tuple[float, float, list[list[float]]]:
    """(texts/s, decodes per text, scores) of the prompt-once loop over ``texts``."""
    loop = PromptOnce(model_path)
    try:
        start = time.perf_counter()
        scores = [loop.score(text) for text in texts]
        seconds = time.perf_counter() - start
        return len(texts) / seconds, loop.decodes / len(texts), scores
    finally:
        loop.close()
