"""The baseline a careful llama-cpp-python user would write: each text's prompt decoded once,
its KV state reused for every completion.

The reference loop (``backend.score_reference``) decodes prompt + completion from an empty
context for every completion: right for an oracle, but as a baseline it flatters the engine.
This loop is what a competent user writes with llama-cpp-python's low-level API instead:

* per text: clear the KV cache, decode the prompt once (logits only at its last token);
* per completion: its first token's log-prob comes from that last row; the rest of its tokens
  (all but the last) are decoded after the prompt, then removed again (``llama_memory_seq_rm``),
  so the prompt's KV cells serve the next completion.

It uses llama.cpp's default context settings (one sequence) except flash attention, which it turns
off as the engine does (flash attention accumulates in half precision: with it on, this loop's
scores differed from the oracle's by up to 0.23 nats on SST-2 with SmolLM2, and the speed
comparison would set two different attention kernels side by side), and the same number of
threads as the engine. What it does not do, and the engine does: share a
completion's leading tokens with other completions, keep the template's fixed prefix across
texts, and put several texts in one decode. Its scores are reported against the oracle too: with
flash attention off they were identical on SmolLM2, but on Gemma 3 its tiny completion decodes
(1-3 tokens) run other kernels than the oracle's and differ by a few hundredths of a nat
(benchmarks/reports/labels.json; DESIGN's note on micro-batch sizes).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


class PromptOnce:
    """A model and a one-sequence context, loaded with llama-cpp-python's low-level API."""

    def __init__(self, model_path: str | Path, *, n_ctx: int, threads: int) -> None:
        import llama_cpp

        lib = self.lib = llama_cpp
        lib.llama_backend_init()
        params = lib.llama_model_default_params()
        # Repacked (extra-buffer) weights crash llama-cpp-python 0.3.36 on AMX CPUs: never load without this.
        params.use_extra_bufts = False
        self.model = lib.llama_model_load_from_file(str(model_path).encode(), params)
        if not self.model:
            raise RuntimeError(f"cannot load {model_path}")
        context = lib.llama_context_default_params()
        context.n_ctx = n_ctx
        context.n_batch = n_ctx
        context.n_threads = context.n_threads_batch = threads
        context.flash_attn_type = lib.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as the engine: see the module docstring
        self.ctx = lib.llama_init_from_model(self.model, context)
        if not self.ctx:
            raise RuntimeError("cannot create a llama.cpp context")
        self.memory = lib.llama_get_memory(self.ctx)
        self.batch = lib.llama_batch_init(n_ctx, 0, 1)
        self.n_vocab = lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(self.model))
        self.tokens_decoded = 0
        self.decodes = 0

    def _decode(self, tokens: Sequence[int], start: int, logits_from: int) -> None:
        """Decode ``tokens`` at positions ``start``... on sequence 0; logits for tokens ``logits_from``... ."""
        batch = self.batch
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = start + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i >= logits_from
        batch.n_tokens = len(tokens)
        if self.lib.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError(f"llama_decode failed on {len(tokens)} tokens")
        self.tokens_decoded += len(tokens)
        self.decodes += 1

    def _log_softmax(self, index: int) -> np.ndarray:
        row = np.ctypeslib.as_array(self.lib.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
        wide = row.astype(np.float64)
        peak = wide.max()
        return wide - (peak + np.log(np.exp(wide - peak).sum()))

    def score(self, texts: Sequence[Any]) -> list[list[np.ndarray]]:
        """Per-token log-probs of every candidate of every ``EncodedText``, as the oracle returns them."""
        out = []
        for text in texts:
            prompt = list(text.prompt)
            n = len(prompt)
            self.lib.llama_memory_clear(self.memory, True)
            self._decode(prompt, 0, n - 1)
            first = self._log_softmax(n - 1)
            per_candidate = []
            for candidate in text.candidates:
                tokens = candidate.tokens
                values = [first[tokens[0]]]
                if len(tokens) > 1:
                    self._decode(tokens[:-1], n, 0)
                    values += [self._log_softmax(i)[token] for i, token in enumerate(tokens[1:])]
                    self.lib.llama_memory_seq_rm(self.memory, 0, n, -1)  # keep the prompt for the next one
                per_candidate.append(np.array(values, dtype=np.float64))
            out.append(per_candidate)
        return out

    def close(self) -> None:
        self.lib.llama_batch_free(self.batch)
        self.lib.llama_free(self.ctx)
        self.lib.llama_model_free(self.model)


def timed(model_path: str | Path, texts: Sequence[Any], *, n_ctx: int = 1024,
          threads: int | None = None) -> tuple[float, float, list[list[float]]]:
    """(texts/s, decodes per text, every candidate's summed log-prob) of the prompt-once loop over ``texts``."""
    loop = PromptOnce(model_path, n_ctx=n_ctx, threads=threads or os.cpu_count() or 1)
    try:
        start = time.perf_counter()
        scores = [[float(values.sum()) for values in text] for text in loop.score(texts)]
        seconds = time.perf_counter() - start
        return len(texts) / seconds, loop.decodes / len(texts), scores
    finally:
        loop.close()
