"""The llama.cpp backend, on llama-cpp-python's low-level bindings.

Two scoring paths share one context:

* :meth:`LlamaCppBackend.score_reference` -- the oracle: every prompt+candidate evaluated on
  its own, in one decode, from an empty sequence. Slow and obviously right.
* :meth:`LlamaCppBackend.score` -- the engine: every token is decoded at most once per text.
  The caller's static prompt prefix is decoded once and kept on sequence 0; each text continues
  after the longest common token prefix with it. A text's candidates form a token trie, fed in
  waves (:mod:`.planner`): shared nodes once, tagged with every branch's sequence id below them
  (a unified KV cache lets one cell belong to many sequences), a candidate's last token never
  (its probability is read from the row before it). Several texts share one decode call;
  logits are requested only for rows read, one per distinct trie prefix.

Numerics: these small quantized models turn a rounding difference in the last bit into
log-prob differences of 0.1-0.8 nats (8-bit activation quantization amplifies it), so the
engine reproduces the oracle bit for bit instead of approximately:

* tiny micro-batches run other CPU kernels: every decode is one micro-batch
  (``n_ubatch == n_batch``) padded to ``MIN_DECODE_TOKENS`` with throw-away tokens;
* repacked weights compute a row differently depending on its place in the batch: the
  model is loaded without them (``use_extra_bufts=False``);
* attention sums over KV cells in SIMD lanes, so a token's result depends on the cell index of
  every key modulo the SIMD stride: every token is placed in a cell congruent to its position
  modulo ``ALIGN``, as in a fresh context, and the shared prefix covers whole 16-cell softmax
  blocks (``PIN_BLOCK``). Cells in between are held by filler sequences so no padding token is
  decoded to skip them (:mod:`.kv_cells`);
* flash attention (half-precision accumulation) is off.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import CapacityError, ModelError
from ...models.gguf import check_gguf
from ...tokenization import EncodedText, common_prefix_length
from ..base import ChatTemplate, ModelHandle, ModelIdentity, ScoreResult
from ..reference import check_reference_capacity, score_each_alone
from .bindings import KvMemory, create_context, default_threads, load_llama_cpp, load_model
from .kv_cells import KvCells, Placement, Row
from .planner import (
    FILLER_SEQS,
    MIN_DECODE_TOKENS,
    N_SEQ_MAX,
    PREFIX_SEQ,
    SCRATCH_SEQS,
    TEXT_SEQS,
    Limits,
    NodeValues,
    TextPlan,
    attention_span,
    candidate_values,
    capacity_message,
    fits,
    plan_text,
    retire_wave,
    wave_copies,
    wave_rows,
)
from .vocab import Vocab, chat_template_text, model_metadata

log = logging.getLogger("lpclassify")

# Every token is stored in a KV cell whose index is congruent to its position modulo ALIGN
# (the widest SIMD accumulation stride of ggml's CPU dot products: 64 halfs on AVX-512).
ALIGN = 64
# The pinned prefix is kept to whole multiples of this many cells: softmax sums a row in
# blocks of 16 floats, so a prefix block must not mix with a text's own cells.
PIN_BLOCK = 16


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


class LlamaCppBackend(ModelHandle):
    """A GGUF model loaded with llama.cpp, scoring candidates exactly and fast.

    ``n_ctx`` bounds one text (prompt + longest candidate); ``batch_size`` bounds how many
    texts share one decode call; ``n_batch`` bounds the tokens of one decode call.
    """

    def __init__(self, model_path: str | os.PathLike[str], *, n_ctx: int = 2048, batch_size: int = 8,
                 n_batch: int | None = None, threads: int | None = None, n_gpu_layers: int = 0,
                 max_outputs: int = 128, verbose: bool = False) -> None:
        llama_cpp, self._log = load_llama_cpp()
        self._log.verbose = verbose
        self._lib = llama_cpp
        self.model_path = Path(model_path)
        self.batch_size = batch_size
        self._n_ctx = n_ctx
        # One text always fits one decode, with room for alignment padding.
        self.n_batch = max(n_batch or 0, n_ctx + 8 * ALIGN)
        self.max_outputs = max_outputs
        self.threads = threads or default_threads()
        self.stats = EngineStats()
        self._lock = threading.RLock()
        self._pinned: tuple[int, ...] = ()
        self._pin_wanted: tuple[int, ...] = ()  # the prefix asked for: decoded again after an error
        self._repin = False

        # llama.cpp trusts the header of what it maps: a truncated or foreign file can crash the
        # process. Every load goes through the header check first (a few ms, no tensor data read).
        check_gguf(self.model_path)
        self._model = load_model(llama_cpp, self._log, self.model_path, n_gpu_layers)
        self.vocab = Vocab(llama_cpp, self._model)
        self.n_vocab = self.vocab.n_tokens
        self.add_bos = self.vocab.add_bos
        self.architecture = model_metadata(llama_cpp, self._model, "general.architecture") or "unknown"
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(self._model)
        self.can_roll_back = not (llama_cpp.llama_model_is_recurrent(self._model)
                                  or llama_cpp.llama_model_is_hybrid(self._model))
        if n_ctx > self.n_ctx_train > 0:
            log.warning("n_ctx %d is larger than the %d tokens %s was trained on", n_ctx, self.n_ctx_train,
                        self.model_path.name)

        # KV cells: the pinned prefix (at most one text) plus one full batch, plus padding.
        n_cells = n_ctx + self.n_batch + 2 * ALIGN
        try:
            self._ctx = create_context(llama_cpp, self._log, self._model, n_cells=n_cells, n_batch=self.n_batch,
                                       n_seq_max=N_SEQ_MAX, threads=self.threads, max_outputs=max_outputs)
        except ModelError as exc:
            llama_cpp.llama_model_free(self._model)
            self._model = None
            raise ModelError(f"cannot create a context for {self.model_path} (n_ctx={n_ctx}): {exc}") from None
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, N_SEQ_MAX)
        self._bos = self.vocab.bos
        n_swa = llama_cpp.llama_model_n_swa(self._model)
        self._cells = KvCells(KvMemory(llama_cpp, self._memory), llama_cpp.llama_n_ctx(self._ctx), align=ALIGN,
                              filler_seqs=FILLER_SEQS, scratch_seqs=SCRATCH_SEQS,
                              padding_token=self._bos if self._bos >= 0 else 0,
                              window=n_swa // 2 if n_swa > 0 else None)
        if not self.can_roll_back:
            warnings.warn(f"{self.model_path.name} is a recurrent/hybrid model whose memory cannot be rolled "
                          "back; scoring falls back to the slower reference path", RuntimeWarning, stacklevel=2)

    # ------------------------------------------------------------------ basics

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def n_pinned(self) -> int:
        """Prompt tokens currently kept in the KV cache and reused by every text."""
        return len(self._pinned)

    def identity(self) -> ModelIdentity:
        """The model file this backend scores with (caches and resumed runs key on it)."""
        return ModelIdentity.of_file(self.model_path)

    def describe(self) -> dict[str, object]:
        return {"path": str(self.model_path), "architecture": self.architecture, "n_vocab": self.n_vocab,
                "n_ctx_train": self.n_ctx_train, "add_bos": self.add_bos, "threads": self.threads}

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        return self.vocab.tokenize(text, add_bos)

    def token_text(self, token: int) -> str:
        return self.vocab.token_text(token)

    def special_tokens(self, text: str) -> dict[str, int]:
        return self.vocab.special_tokens(text)
    def chat_template(self) -> ChatTemplate | None:
        source = chat_template_text(self._lib, self._model)
        bos, eos = (self.token_text(t) if t >= 0 else "" for t in (self.vocab.bos, self.vocab.eos))
        return ChatTemplate(source, bos, eos, self.model_path.name) if source is not None else None

    def close(self) -> None:
        """Free llama.cpp's memory now rather than at garbage collection."""
        if getattr(self, "_ctx", None):
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            self._lib.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:
        try:  # noqa: SIM105 - at interpreter shutdown even contextlib may be gone
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ decoding

    def _decode(self, placement: Placement) -> None:
        """Decode one planned batch as one micro-batch, then turn its padding into filler."""
        lib = self._lib
        layout = placement.layout
        if len(layout) > self.n_batch:
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
        result = lib.llama_decode(self._ctx, batch)
        if result != 0:
            raise RuntimeError(f"llama_decode failed with code {result} on a batch of {len(layout)} tokens: "
                               + self._log.reason())
        self._cells.retire_padding(placement)
        self.stats.decode_calls += 1
        self.stats.tokens_decoded += len(layout) - placement.n_padding
        self.stats.padding_tokens += placement.n_padding
        self.stats.logit_rows += sum(row.logits for row in layout)

    def _reset_memory(self) -> None:
        """Forget every cell."""
        self._lib.llama_memory_clear(self._memory, True)
        self._cells.reset()
        self._pinned = ()

    def _recover(self) -> None:
        """After an error mid-decode the mirror of the cells cannot be trusted: start clean, and
        decode the pinned prefix again on the next call."""
        self._reset_memory()
        self._repin = True

    def _log_softmax_row(self, batch_index: int) -> tuple[np.ndarray, float]:
        """The float32 logits of one output row and their float64 log-normalizer."""
        pointer = self._lib.llama_get_logits_ith(self._ctx, batch_index)
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
        wide = logits.astype(np.float64)
        peak = wide.max()
        return logits, float(peak + np.log(np.exp(wide - peak).sum()))

    def _log_probs(self, batch_index: int, tokens: set[int]) -> dict[int, float]:
        """log p(token) for each of ``tokens`` at one output row, normalized in float64."""
        logits, log_norm = self._log_softmax_row(batch_index)
        return {token: float(logits[token]) - log_norm for token in tokens}

    def _place_sequence(self, rows: list[Row]) -> Placement:
        """Plan rows of one sequence (positions from rows[0].pos) at the first aligned cells."""
        start = self._cells.text_start(self._cells.base, rows[0].pos)
        return self._cells.place([(row, start + k) for k, row in enumerate(rows)], MIN_DECODE_TOKENS)

    def _finish_sequence(self, seq: int, rows: list[Row], placement: Placement) -> None:
        start = placement.cells[placement.batch_index[rows[0]]]
        self._cells.retire(seq, start, rows[0].pos, len(rows))
        self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)

    # ------------------------------------------------------------------ reference path

    def score_reference(self, texts: Sequence[EncodedText]) -> ScoreResult:
        """Each prompt+candidate alone, from an empty sequence, in one decode: the oracle."""
        with self._lock:
            results = score_each_alone(self._score_alone, texts)
            self.stats.texts += len(texts)
            return results

    def _score_alone(self, prompt: Sequence[int], continuation: Sequence[int]) -> np.ndarray:
        check_reference_capacity(continuation, self.max_outputs)  # llama.cpp would abort the process
        seq = TEXT_SEQS[0]
        tokens = list(prompt) + list(continuation[:-1])
        first_read = len(prompt) - 1
        rows = [Row(token, pos, [seq], pos >= first_read) for pos, token in enumerate(tokens)]
        try:
            placement = self._place_sequence(rows)
            self._decode(placement)
            values = np.array([self._log_probs(placement.batch_index[rows[first_read + k]], {token})[token]
                               for k, token in enumerate(continuation)], dtype=np.float64)
            self._finish_sequence(seq, rows, placement)
            return values
        except BaseException:
            self._recover()
            raise

    # ------------------------------------------------------------------ engine

    def _pin(self, tokens: tuple[int, ...]) -> None:
        """Decode ``tokens`` once on the prefix sequence; later texts reuse what they share."""
        self._pin_wanted, self._repin = tokens, False
        if tokens == self._pinned or not self.can_roll_back:
            return
        self._reset_memory()
        if tokens:
            rows = [Row(token, pos, [PREFIX_SEQ], False) for pos, token in enumerate(tokens)]
            try:
                self._decode(self._cells.place([(row, pos) for pos, row in enumerate(rows)], MIN_DECODE_TOKENS))
            except BaseException:
                self._reset_memory()
                raise
        self._cells.pin(len(tokens))
        self._pinned = tokens

    def pinnable(self, prefix: Sequence[int]) -> tuple[int, ...]:
        """The part of ``prefix`` the engine keeps in the cache: whole 16-cell blocks within n_ctx."""
        tokens = tuple(prefix)[: self._n_ctx]
        return tokens[: len(tokens) // PIN_BLOCK * PIN_BLOCK]

    def _shrink_pin(self, keep: int) -> None:
        """Keep only the first ``keep`` pinned tokens (a text shares fewer: reuse must stay exact)."""
        keep = keep // PIN_BLOCK * PIN_BLOCK
        self._lib.llama_memory_seq_rm(self._memory, PREFIX_SEQ, keep, -1)
        self._cells.unpin_from(keep)
        self._pinned = self._pinned[:keep]

    def _plan(self, text: EncodedText, first_seq: int, cursor: int) -> TextPlan:
        """Lay one text out from the first aligned cell at or after ``cursor``."""
        reused = len(self._pinned)
        return plan_text(text, reused=reused, start=self._cells.text_start(cursor, reused), first_seq=first_seq)

    def score(self, texts: Sequence[EncodedText], *, prefix: Sequence[int] = ()) -> ScoreResult:
        """Per-token log-probs of every candidate of every text, each token decoded at most once.

        ``prefix``: tokens that start (almost) every prompt of the caller; decoded once and kept
        in the cache while callers keep asking for the same prefix.
        """
        if not self.can_roll_back:
            return self.score_reference(texts)
        with self._lock:
            wanted = self.pinnable(prefix)
            if self._repin or wanted != self._pin_wanted:
                self._pin(wanted)
            # Reuse must end before each text's last prompt token (its row scores the first tokens).
            shared = min((min(common_prefix_length(t.prompt, self._pinned), len(t.prompt) - 1) for t in texts),
                         default=len(self._pinned))
            if shared < len(self._pinned):
                self._shrink_pin(shared)
            limits = Limits(self.batch_size, self.max_outputs, self.n_batch)
            base = self._cells.base
            results: ScoreResult = []
            plans: list[TextPlan] = []
            for text in texts:
                plan = self._plan(text, plans[-1].seqs[-1] + 1, plans[-1].end) if plans else None
                if plan is None or not fits([*plans, plan], base, limits):
                    if plans:
                        results.extend(self._run(plans))
                        plans = []
                    plan = self._plan(text, TEXT_SEQS[0], base)
                    if not fits([plan], base, limits):
                        raise CapacityError(capacity_message(text, self.max_outputs, self.n_batch))
                plans.append(plan)
            if plans:
                results.extend(self._run(plans))
            return results

    def _run(self, plans: Sequence[TextPlan]) -> ScoreResult:
        """Decode laid-out texts together, wave by wave, and read their candidates."""
        lib, memory = self._lib, self._memory
        try:
            for plan in plans:
                if plan.reused:
                    lib.llama_memory_seq_cp(memory, PREFIX_SEQ, plan.waves[0].seq, 0, plan.reused)
            values: list[NodeValues] = [{} for _ in plans]
            end = 0
            for wave in range(max(plan.n_waves for plan in plans)):
                for plan in plans:  # the kept prompt and prefix onto the wave's sequences
                    copies, carry = wave_copies(plan, wave)
                    for src, dst, p1 in copies:
                        lib.llama_memory_seq_cp(memory, src, dst, 0, p1)
                    if carry is not None:
                        lib.llama_memory_seq_rm(memory, carry, -1, -1)
                end = max(end, self._run_wave(plans, wave, values))
            # Filler above this batch's span would widen every later decode's attention.
            self._cells.trim(attention_span(end))
        except BaseException:
            self._recover()
            raise
        self.stats.texts += len(plans)
        return [[candidate_values(candidate, values[i]) for candidate in plan.text.candidates]
                for i, plan in enumerate(plans)]

    def _run_wave(self, plans: Sequence[TextPlan], wave: int, values: list[NodeValues]) -> int:
        """Decode wave ``wave`` and read its rows; returns one past the highest KV cell it used."""
        rows, nodes = wave_rows(plans, wave)
        placement = self._cells.place(rows, MIN_DECODE_TOKENS)
        self._decode(placement)
        for i, node, row in nodes:
            values[i][node] = self._log_probs(placement.batch_index[row], plans[i].reads_at[node])
        for plan in plans:
            if (seq := retire_wave(self._cells, plan, wave)) is not None:
                self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)
        return placement.cells[-1] + 1
